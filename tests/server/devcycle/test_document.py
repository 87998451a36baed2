"""What the edge derives from an environment's DevCycle section (server/devcycle/document.py)."""

from __future__ import annotations

from typing import Any

import orjson

from server.devcycle.document import devcycle_document

FEATURES: list[dict[str, Any]] = [
    {"_id": "f1", "key": "one", "variations": [{"_id": "a", "variables": [{"_var": "v1", "value": 1}]}]},
    {
        "_id": "f2",
        "key": "two",
        "variations": [{"_id": "b", "variables": [{"_var": "v1", "value": 2}, {"_var": "v2", "value": True}]}],
    },
]
SECTION: dict[str, Any] = {
    "project": {"_id": "p"},
    "environment": {"_id": "e"},
    "features": FEATURES,
    "variables": [{"_id": "v1", "key": "shared"}, {"_id": "v2", "key": "own"}],
    "sse": {"hostname": "https://sse.devcycle.com", "path": "/x"},
}


def test_no_section_no_document() -> None:
    assert devcycle_document({"features": []}) is None


def test_each_kind_gets_the_features_visible_to_it_and_their_variables() -> None:
    doc = devcycle_document({"devcycle": SECTION, "sdkVisibility": {"two": {"client": False}}})
    assert doc is not None and doc.has_variables
    assert doc.hidden == {"client": frozenset({"f2"}), "mobile": frozenset(), "server": frozenset()}
    server = orjson.loads(doc.configs["server"])
    assert server == {k: v for k, v in SECTION.items() if k != "sse"}
    client = orjson.loads(doc.configs["client"])
    assert [f["key"] for f in client["features"]] == ["one"]
    # v1 is shared with a visible feature and stays; v2 belonged to the hidden one only.
    assert client["variables"] == [{"_id": "v1", "key": "shared"}]


def test_a_section_without_variables_is_not_served_over_ofrep() -> None:
    doc = devcycle_document({"devcycle": {**SECTION, "variables": []}})
    assert doc is not None and not doc.has_variables
