"""``evaluator.parse_query`` splits a raw query string exactly as Starlette's ``QueryParams``
(``parse_qsl(qs.decode("latin-1"), keep_blank_values=True)``), for any bytes at all."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

import evaluator


def reference(qs: bytes) -> list[tuple[str, str]]:
    return parse_qsl(qs.decode("latin-1"), keep_blank_values=True)


# Query-ish bytes: separators, escapes (valid, truncated, non-hex), '+', UTF-8 and raw high bytes.
PIECES = st.sampled_from(
    [
        b"&",
        b"=",
        b"+",
        b"%",
        b"%2",
        b"%2B",
        b"%20",
        b"%C3",
        b"%A9",
        b"%c3%a9",
        b"%E2%82",
        b"%FF",
        b"%zz",
        b"context.",
        b"a",
        b"Z9",
        b"\xc3\xa9",
        b"\xe9",
        b"\xff",
        b" ",
        b";",
        b"\x00",
    ]
)
QUERY = st.lists(st.one_of(PIECES, st.binary(max_size=6)), max_size=30).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(QUERY)
def test_matches_parse_qsl(qs: bytes) -> None:
    assert evaluator.parse_query(qs) == reference(qs)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_matches_parse_qsl_on_arbitrary_bytes(qs: bytes) -> None:
    assert evaluator.parse_query(qs) == reference(qs)


def test_same_query_params_as_starlette() -> None:
    qs = b"publishableKey=pk&context.user.id=u%2B1+x&context.company.name=Caf%C3%A9&debug&context.a=1&context.a=2"
    ours, theirs = QueryParams(evaluator.parse_query(qs)), QueryParams(qs)
    assert ours.multi_items() == theirs.multi_items()
    assert ours["context.a"] == theirs["context.a"] == "2"
