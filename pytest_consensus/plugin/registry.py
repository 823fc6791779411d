"""Finding adapters: by entry-point name (built-ins too) or as ``module:attr``."""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

from pytest_consensus.contract import Adapter
from pytest_consensus.contract.errors import AdapterLoadError, AdapterNotFound

ENTRY_POINT_GROUP = "pytest_consensus.adapters"


def installed_adapters() -> dict[str, EntryPoint]:
    """Every adapter registered under the entry-point group, by name."""
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def _describe_installed() -> str:
    names = sorted(installed_adapters())
    return ", ".join(names) if names else "(none)"


def resolve_adapter_class(spec: str) -> type[Adapter]:
    """Turn ``pysyncobj`` or ``my.module:MyAdapter`` into an adapter class.

    Raises AdapterNotFound for an unknown name (listing the installed ones) and
    AdapterLoadError when the adapter exists but cannot be imported or is no Adapter.
    """
    spec = spec.strip()
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise AdapterLoadError(
                f"adapter {spec!r}: cannot import module {module_name!r}: "
                f"{type(error).__name__}: {error}"
            ) from error
        try:
            loaded = getattr(module, attribute)
        except AttributeError:
            raise AdapterLoadError(
                f"adapter {spec!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    else:
        entry = installed_adapters().get(spec)
        if entry is None:
            raise AdapterNotFound(
                f"unknown consensus adapter {spec!r}; installed adapters: {_describe_installed()}. "
                "Name an installed adapter, or give your own as 'package.module:AdapterClass'."
            )
        try:
            loaded = entry.load()
        except Exception as error:
            hint = ""
            if isinstance(error, ImportError):
                hint = f" (is its extra installed? try: pip install 'pytest-consensus[{spec}]')"
            raise AdapterLoadError(
                f"adapter {spec!r} ({entry.value}) failed to import: "
                f"{type(error).__name__}: {error}{hint}"
            ) from error
    if not (isinstance(loaded, type) and issubclass(loaded, Adapter)):
        raise AdapterLoadError(
            f"adapter {spec!r} is {loaded!r}, not a subclass of pytest_consensus.contract.Adapter"
        )
    return loaded


def load_adapter(spec: str, options: dict[str, str] | None = None) -> Adapter:
    """Resolve and instantiate an adapter; errors from its constructor say which adapter."""
    adapter_class = resolve_adapter_class(spec)
    try:
        return adapter_class(options or {})
    except Exception as error:
        raise AdapterLoadError(
            f"adapter {spec!r}: {adapter_class.__name__}() raised {type(error).__name__}: {error}"
        ) from error
