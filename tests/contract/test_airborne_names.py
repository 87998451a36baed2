"""Airborne names and their keys (``contract/airborne_names.py``)."""

from __future__ import annotations

import re

import pytest

from contract.airborne_names import application_key, name_problem, release_key

KEY = re.compile(r"^[a-z0-9-_.]+$")


@pytest.mark.parametrize("key", ["shop", "shop-app.v2_x", "a", "0-9"])
def test_a_valid_key_is_its_own_key(key: str) -> None:
    """Applications created when names had to be keys keep their keys."""
    assert application_key(key) == key


def test_names_map_to_project_keys() -> None:
    assert application_key("ShopApp") == application_key("shopapp") == application_key("SHOPAPP") == "shopapp"
    assert application_key("Shop App") == "shop-app"
    for name in ("Café App", "Cafe App", "应用", "アプリ", "Shop App!"):
        assert KEY.match(application_key(name)), name
    # Names differing only in non-ASCII characters stay distinct; case of them does not matter.
    assert application_key("Café App") != application_key("Cafè App")
    assert application_key("ÉCOLE") == application_key("école")
    assert release_key("Acme Mobile", "Shop App") == "Acme Mobile/shop-app"


@pytest.mark.parametrize("name", ["Acme Mobile", "ShopApp", "Café Ünï", "a", "x.y-z_1"])
def test_document_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", " lead", "trail ", "a/b", "tab\there", "nl\n", "del\x7f"])
def test_names_that_would_make_a_key_or_url_ambiguous_are_refused(name: str) -> None:
    assert name_problem(name) is not None
