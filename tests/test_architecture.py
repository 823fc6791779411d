"""The package's shape stays as docs/architecture.md draws it: layers that import only
downward, no import cycles, and ``mypy --strict`` clean over everything that is installed."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_consensus

#: Each package's layer (docs/architecture.md): a module may import its own package and the
#: packages of lower layers, never a package of its own layer or above.
LAYERS = {
    "contract": 0,
    "hosts": 1,
    "clients": 1,
    "nemesis": 2,
    "checkers": 2,
    "adapters": 2,
    "report": 3,
    "plugin": 4,
    "conformance": 5,
}
#: Old module names kept so adapters written against 0.1 keep working; nothing inside the
#: package may import them.
COMPATIBILITY_MODULES = {
    "pytest_consensus.errors",
    "pytest_consensus.process",
    "pytest_consensus.adapters.process_cluster",
    "pytest_consensus.adapters.http_protocol",
}
ROOT = Path(__file__).resolve().parents[1]


def installed_modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name, with its source file."""
    modules = {"pytest_consensus": Path(pytest_consensus.__file__)}
    # adapters/ and conformance/ are mapped into the package from folders of their own,
    # which an editable install's finder knows and a walk of the package's folder does not.
    roots = ["pytest_consensus", "pytest_consensus.adapters", "pytest_consensus.conformance"]
    for root in roots:
        package = importlib.import_module(root)
        modules[root] = Path(str(package.__file__))
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            spec = importlib.util.find_spec(info.name)
            assert spec is not None and spec.origin is not None, info.name
            modules[info.name] = Path(spec.origin)
    return modules


def imports_of(name: str, source: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """The package's modules that ``name`` imports: (all of them, those outside ``if
    TYPE_CHECKING:``, which are the ones that run)."""
    tree = ast.parse(source.read_text(), str(source))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    package = name if source.name == "__init__.py" else name.rpartition(".")[0]
    every, running = set(), set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        for target in targets:
            if target in modules and target != name:
                every.add(target)
                if id(node) not in type_only:
                    running.add(target)
    return every, running


def layer_of(name: str) -> tuple[str, int] | None:
    parts = name.split(".")
    if len(parts) < 2 or name in COMPATIBILITY_MODULES:
        return None
    return parts[1], LAYERS[parts[1]]


def test_every_package_has_a_layer() -> None:
    modules = installed_modules()
    packages = {name.split(".")[1] for name in modules if name.count(".") >= 1}
    top_level_modules = {
        name.split(".")[1]
        for name, path in modules.items()
        if name.count(".") == 1 and path.name != "__init__.py"
    }
    assert packages - top_level_modules == set(LAYERS)
    assert {f"pytest_consensus.{m}" for m in top_level_modules} <= COMPATIBILITY_MODULES


def test_modules_import_only_their_own_package_and_lower_layers() -> None:
    modules = installed_modules()
    upward = []
    for name, source in modules.items():
        importer = layer_of(name)
        for target in sorted(imports_of(name, source, modules)[0]):
            if target in COMPATIBILITY_MODULES:
                upward.append(f"{name} imports {target}, kept only for old adapters")
                continue
            imported = layer_of(target)
            if importer is None or imported is None or importer[0] == imported[0]:
                continue
            if imported[1] >= importer[1]:
                upward.append(f"{name} (layer {importer[1]}) imports {target} ({imported[1]})")
    assert not upward, "\n".join(upward)


def test_there_are_no_import_cycles() -> None:
    modules = installed_modules()
    graph = {name: imports_of(name, source, modules)[1] for name, source in modules.items()}
    cycles = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target) :] + [name, target]))
            elif target not in state:
                visit(target, [*path, name] if target not in path else path)
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    # A package's __init__ re-exporting its own modules is not a cycle of the flow.
    real = [c for c in cycles if len({part.split(".")[1] for part in c.split(" -> ")}) > 1]
    assert not real, "\n".join(real)


def test_the_adapter_authors_surface_is_one_module() -> None:
    """Everything docs/writing-an-adapter.md tells an author to import comes from
    ``pytest_consensus.contract``, and the names the docs showed before keep working."""
    surface = importlib.import_module("pytest_consensus.contract")
    documented = (ROOT / "docs" / "writing-an-adapter.md").read_text()
    for name in surface.__all__:
        assert hasattr(surface, name), name
        assert f"`{name}`" in documented, f"{name} is exported but not listed in the guide"
    from pytest_consensus.adapters.process_cluster import ProcessCluster
    from pytest_consensus.errors import NotLeader
    from pytest_consensus.process import NodeProcess

    assert ProcessCluster is surface.ProcessCluster
    assert NotLeader is surface.NotLeader
    assert NodeProcess is surface.NodeProcess


@pytest.mark.slow
def test_mypy_strict_is_clean_over_everything_installed(tmp_path: Path) -> None:
    """The installed tree (``adapters/`` and ``conformance/`` land inside the package, see
    docs/decisions.md) is rebuilt as installed and checked as one package."""
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: python3 -m pip install -e '.[dev]'")
    staged = tmp_path / "pytest_consensus"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(pytest_consensus.__path__[0]), staged, ignore=ignore)
    for sub in ("adapters", "conformance"):
        source = Path(importlib.import_module(f"pytest_consensus.{sub}").__path__[0])
        shutil.copytree(source, staged / sub, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".mypy_cache")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_member_of_the_contract_is_in_the_guides_reference() -> None:
    """Every attribute and method of the contract's classes, every field of its records and
    every member of its enums is named in docs/writing-an-adapter.md: an adapter author
    should never have to read the source or introspect to find one."""
    import dataclasses
    import enum

    surface = importlib.import_module("pytest_consensus.contract")
    documented = (ROOT / "docs" / "writing-an-adapter.md").read_text()
    unnamed = []
    for class_name in (
        "Adapter",
        "Node",
        "Client",
        "Cluster",
        "NodeStatus",
        "PointDigest",
        "HostSpec",
        "AdapterInfo",
        "Capability",
        "Role",
        "ReadLevel",
        "ProcessCluster",
        "ProcessNode",
        "NodeProcess",
        "EventLoopThread",
    ):
        cls = getattr(surface, class_name)
        if issubclass(cls, enum.Enum):
            names = [member.name for member in cls]
        elif dataclasses.is_dataclass(cls):
            names = [f.name for f in dataclasses.fields(cls)]
        else:
            names = [name for name in vars(cls) if not name.startswith("_")]
        unnamed += [
            f"{class_name}.{name}"
            for name in names
            if not any(form in documented for form in (f"`{name}", f".{name}", f" {name}("))
        ]
    assert not unnamed, f"not named in docs/writing-an-adapter.md: {unnamed}"
