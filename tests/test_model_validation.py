"""Record validation: what a user sees when a field cannot be stored.

Text and JSON fields are checked on every record a store builds, so the check has a fast path
for the common case; these tests pin that the fast path accepts exactly what the full check
accepts, and that a rejection still names the field and the place inside it.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import veritas_store as vs
from veritas_store.records.values import _check_json


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def audit(**changes: Any) -> vs.Audit:
    return vs.Audit(id="a1", url="https://x.example", **changes)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("a\x00b", "NUL"), ("caf\udce9", "lone surrogate")],
)
def test_unstorable_text_names_the_field(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"Audit.narrative.*{problem}"):
        audit(narrative=text)
    with pytest.raises(ValueError, match=f"Finding.evidence.*{problem}"):
        vs.Finding("c", "p", "high", 0.5, "d", evidence=text)


def test_non_ascii_text_is_kept() -> None:
    assert audit(narrative="Überprüfung — 检查 ✓").narrative == "Überprüfung — 检查 ✓"


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": [1, {"b": math.nan}]}, r"Audit.signal_scores\['a'\]\[1\]\['b'\] must be a finite"),
        ({"a": {1: "x"}}, r"Audit.signal_scores\['a'\] keys must be str"),
        ({"a": ["ok", "bad\x00"]}, r"Audit.signal_scores\['a'\]\[1\] must not contain NUL"),
        ({"k\udce9": 1}, r"Audit.signal_scores key .* lone surrogate"),
        ({"a": {1, 2}}, r"Audit.signal_scores\['a'\] must hold only JSON values"),
    ],
)
def test_bad_json_names_the_path(value: Any, where: str) -> None:
    with pytest.raises((TypeError, ValueError), match=where):
        audit(signal_scores=value)


def test_str_and_int_subclasses_are_json() -> None:
    stored = audit(security_results={"colour": Colour.RED, "level": Level.HIGH})
    assert stored.security_results == {"colour": "red", "level": 3}


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: they must be refused
    | st.text()  # lone surrogates and NUL included
    | st.sampled_from([Colour.RED, Level.HIGH, b"bytes", 1j]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text() | st.integers(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), json_like, max_size=4))
def test_fast_check_agrees_with_the_full_check(value: dict[str, Any]) -> None:
    try:
        _check_json(value, "x")
    except (TypeError, ValueError):
        expected_ok = False
    else:
        expected_ok = True
    try:
        audit(signal_scores=value)
    except (TypeError, ValueError):
        assert not expected_ok
    else:
        assert expected_ok


def test_evolve_shares_the_frozen_json_and_copies_the_callers() -> None:
    """A record's JSON fields are frozen copies of what the caller passed (so the caller's
    dict can change afterwards); a record built from another record's frozen values shares
    them, since neither can change them."""
    mine = {"nested": {"list": [1, 2]}, "x": 1.5}
    first = audit(domain_info=mine)
    mine["nested"]["list"].append(3)
    assert first.domain_info == {"nested": {"list": [1, 2]}, "x": 1.5}
    second = attrs.evolve(first, narrative="changed")
    assert second.domain_info is first.domain_info
    with pytest.raises(TypeError, match="immutable"):
        second.domain_info["nested"]["list"].append(4)  # type: ignore[index]
    assert first.domain_info["nested"]["list"] == [1, 2]  # type: ignore[index]
