"""Resolving adapters by entry-point name or module:attr, with errors that help."""

from __future__ import annotations

import pytest

from pytest_consensus.adapters.pysyncobj import PySyncObjAdapter
from pytest_consensus.contract.errors import AdapterLoadError, AdapterNotFound
from pytest_consensus.plugin.registry import installed_adapters, load_adapter, resolve_adapter_class


def test_builtin_pysyncobj_is_registered_through_the_entry_point() -> None:
    assert "pysyncobj" in installed_adapters()
    assert resolve_adapter_class("pysyncobj") is PySyncObjAdapter


def test_unknown_name_lists_the_installed_adapters() -> None:
    with pytest.raises(AdapterNotFound, match=r"unknown consensus adapter 'nosuch'.*pysyncobj"):
        resolve_adapter_class("nosuch")


def test_module_attr_form_loads_a_custom_adapter() -> None:
    adapter = load_adapter("fake_store:FakeAdapter", {"flavour": "x"})
    assert adapter.name == "fake" and adapter.version() == "fake 1.0 (x)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:Adapter", "cannot import module 'no_such_module_xyz'"),
        ("fake_store:Missing", "has no attribute 'Missing'"),
        ("fake_store:FakeClient", "not a subclass of pytest_consensus.contract.Adapter"),
        ("fake_store:ExplodingAdapter", "ExplodingAdapter\\(\\) raised RuntimeError"),
    ],
)
def test_bad_adapters_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(AdapterLoadError, match=message):
        load_adapter(spec)


def test_test_ids_are_the_adapters_names_unless_two_share_one() -> None:
    from pytest_consensus.plugin.hooks import adapter_ids

    fake = load_adapter("fake_store:FakeAdapter", {})
    second = load_adapter("fake_store:SecondFakeAdapter", {})
    assert adapter_ids({"fake_store:FakeAdapter": fake, "pysyncobj": PySyncObjAdapter()}) == [
        "fake",
        "pysyncobj",
    ]
    twin = load_adapter("fake_store:FakeAdapter", {})
    assert adapter_ids({"fake_store:FakeAdapter": fake, "tests.fake_store:FakeAdapter": twin}) == [
        "fake_store:FakeAdapter",
        "tests.fake_store:FakeAdapter",
    ]
    assert second.name == "fake-two"
