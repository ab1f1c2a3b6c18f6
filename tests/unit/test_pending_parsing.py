"""Hostile pending transactions: whatever Tatum (or whoever answers in its place) sends, parsing a pending
transaction or its `serializedTransaction` fails only with ChainError, and deep nesting is refused before
the standard JSON parser can recurse on it."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains import safejson
from chains.base import ChainError, PendingTransaction, json_object

# Any JSON value: what a hostile API can put in any field.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["id", "chain", "serializedTransaction", "hashes", "index", "withdrawalId", "signatures",
          "withdrawalResponses"]
# Objects that look like pending transactions, with any field of any type (or missing).
pending_like = st.fixed_dictionaries({}, optional={name: json_values for name in FIELDS})
plausible = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=30), "chain": st.sampled_from(["ETH", "BTC", "XLM", "\r\nETH"]),
     "serializedTransaction": st.text(max_size=40)},
    optional={"hashes": json_values | st.lists(st.text(max_size=10), max_size=3),
              "index": json_values | st.integers(min_value=-5, max_value=2**40),
              "signatures": json_values | st.lists(st.fixed_dictionaries(
                  {"id": json_values | st.text(max_size=8)}, optional={"index": json_values}), max_size=3),
              "withdrawalResponses": json_values, "withdrawalId": json_values})

VALID = {"id": "5e6645712b55823de7ea82f1", "chain": "ETH", "serializedTransaction": "{}",
         "hashes": ["6f3c0a2e-1d5b-4c1e-9a51-3f1b0c9e7d21"], "index": 1, "withdrawalId": "wd-1",
         "signatures": [{"id": "6f3c0a2e", "index": 0}], "withdrawalResponses": [{"vIn": "0"}]}
# A valid pending transaction with one field replaced by anything at all (or dropped).
one_field_hostile = st.builds(lambda name, value: {**VALID, name: value} if value != "drop" else
                              {k: v for k, v in VALID.items() if k != name},
                              st.sampled_from(FIELDS),
                              st.one_of(st.just("drop"), st.none(), st.booleans(), st.integers(), st.floats(),
                                        st.text(max_size=5), json_values))


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, pending_like, plausible))
def test_a_pending_transaction_is_parsed_or_refused_with_chain_error(element: object) -> None:
    try:
        pending = PendingTransaction.from_json(element)
    except ChainError:
        return
    assert isinstance(pending.id, str) and pending.id
    assert isinstance(pending.chain, str) and isinstance(pending.serialized_transaction, str)
    assert all(isinstance(h, str) for h in pending.hashes)
    assert pending.index is None or (isinstance(pending.index, int) and pending.index >= 0)


@settings(max_examples=200, deadline=None)
@given(one_field_hostile)
def test_one_hostile_field_in_a_valid_pending_transaction_is_a_chain_error_or_harmless(element: dict) -> None:
    test_a_pending_transaction_is_parsed_or_refused_with_chain_error.hypothesis.inner_test(element)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=60), json_values.map(json.dumps),
                 st.integers(min_value=60, max_value=5000).map(lambda n: "[" * n + "]" * n),
                 st.integers(min_value=60, max_value=5000).map(lambda n: '{"a":' * n + "1" + "}" * n)))
def test_a_serialized_transaction_is_an_object_or_a_chain_error(serialized: str) -> None:
    try:
        obj = json_object(serialized)
    except ChainError:
        return
    assert isinstance(obj, dict)
    assert obj == json.loads(serialized)


@pytest.mark.parametrize("depth", [64, 65, 1000, sys.getrecursionlimit() * 10])
def test_nesting_is_refused_past_64_levels_without_recursion(depth: int) -> None:
    for document in ("[" * depth + "]" * depth, '{"k":' * depth + "null" + "}" * depth):
        if depth <= 64:
            assert safejson.loads(document) is not None
            continue
        with pytest.raises(ChainError, match="nests deeper than 64 levels"):
            json_object(document)


def test_brackets_inside_strings_do_not_count_and_escapes_are_honoured() -> None:
    tricky = {"a": "[" * 500 + "\\\"" + "{" * 500, "b": ["\\", '"]]]]'], "c": "\u2028]"}
    assert safejson.loads(json.dumps(tricky)) == tricky
    assert json_object(json.dumps({"memo": "{" * 10_000})) == {"memo": "{" * 10_000}
    # A quote escaped inside a string does not end it; an escaped backslash before a quote does.
    assert safejson.loads('["\\\\", [[]]]') == ["\\", [[]]]
    with pytest.raises(ValueError, match="nests deeper"):
        safejson.loads('["\\\\"' + ", [" * 70 + "]" * 70 + "]")


def test_other_limits_and_malformed_input() -> None:
    with pytest.raises(ChainError, match="larger than 100 bytes"):
        safejson.loads("[" + "1," * 60 + "1]", ChainError, max_bytes=100)
    with pytest.raises(ChainError, match="not UTF-8"):
        safejson.loads(b'{"a": "\xff"}', ChainError)
    for bad in ("]", "]]]][[[[" * 20, '"' + '\\"' * 1000, "{" * 70, "", "nan", "[1,]"):
        with pytest.raises(ChainError):
            safejson.loads(bad, ChainError)
    with pytest.raises(ChainError, match="not a JSON object"):
        json_object("[1, 2]")
