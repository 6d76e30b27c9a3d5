"""The conformance kit: one behaviour suite that every backend must pass.

Subclass a contract in your test module and provide a fixture that yields a fresh, empty
store::

    import pytest
    from veritas_store.testing import AuditStoreContract

    class TestMyStore(AuditStoreContract):
        @pytest.fixture
        def audit_store(self, tmp_path):
            store = MyStore(path=str(tmp_path))
            yield store
            store.close()

        # optional: a new store over the same data, to test that data survives close()
        @pytest.fixture
        def reopen_audit_store(self, tmp_path):
            return lambda: MyStore(path=str(tmp_path))

``BlobStoreContract`` works the same way with ``blob_store`` (and ``reopen_blob_store``).
The kit reads the store's declared capabilities (``veritas_store.capabilities_of``) and skips,
with a reason naming the capability, what the store says it cannot do; it checks that such a
method raises ``NotImplementedError`` instead.

Requires pytest and hypothesis (``pip install veritas-store[testing]``). pytest loads the kit's
pytest plugin (``veritas_store.pytest_plugin``, entry point ``pytest11``) by itself, so kit
failures show pytest's full assertion details. The strategies ``audits()``, ``audit_ids()``,
``blob_keys()``, ``findings()`` and ``screenshots()`` and the helper ``sample_audit()`` are
public too, for your own property tests.
"""

from __future__ import annotations

import asyncio
import string
import threading
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import veritas_store as vs

# -- strategies ------------------------------------------------------------------------------

_ID_FIRST = string.ascii_letters + string.digits
_ID_REST = _ID_FIRST + "._-"


def audit_ids(max_size: int = 40) -> st.SearchStrategy[str]:
    """Valid audit ids (and blob key segments)."""
    return st.builds(
        lambda a, b: a + b,
        st.sampled_from(_ID_FIRST),
        st.text(alphabet=_ID_REST, max_size=max_size - 1),
    )


def blob_keys() -> st.SearchStrategy[str]:
    return st.lists(audit_ids(20), min_size=1, max_size=4).map("/".join)


_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=60,
)
_finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
_json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _finite | _text
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
_datetimes = st.datetimes(
    min_value=datetime(1971, 1, 2), max_value=datetime(2099, 12, 30), timezones=_zones
)
_count = st.integers(0, 10_000)


def findings() -> st.SearchStrategy[vs.Finding]:
    return st.builds(
        vs.Finding,
        category=_text,
        pattern_type=_text,
        severity=st.sampled_from(["low", "medium", "high", "critical"]),
        confidence=_finite,
        description=_text,
        screenshot_index=st.none() | _count,
        evidence=st.none() | _text,
        id=st.none() | _text,
        plain_english=st.none() | _text,
    )


def screenshots(audit_id: str) -> st.SearchStrategy[tuple[vs.Screenshot, ...]]:
    def build(indexes: list[int], label: str, size: int, digest: str) -> tuple[vs.Screenshot, ...]:
        return tuple(
            vs.Screenshot(i, label, f"{audit_id}/{i:04d}.png", size, "image/png", digest)
            for i in indexes
        )

    return st.builds(
        build,
        st.lists(st.integers(0, 9999), unique=True, max_size=3),
        _text,
        _count,
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    )


@st.composite
def audits(draw: Any, audit_id: str | None = None) -> vs.Audit:
    """Fully populated, valid audits."""
    audit_id = audit_id or draw(audit_ids())
    created = draw(_datetimes)
    return vs.Audit(
        id=audit_id,
        url=draw(_text),
        tier=draw(_text),
        verdict_mode=draw(_text),
        status=draw(st.sampled_from(list(vs.AuditStatus))),
        created_at=created,
        started_at=draw(st.none() | _datetimes),
        completed_at=draw(st.none() | _datetimes),
        updated_at=draw(_datetimes),
        trust_score=draw(st.none() | _finite),
        risk_level=draw(st.none() | _text),
        narrative=draw(st.none() | st.text(max_size=2000).filter(lambda t: "\x00" not in t)),
        signal_scores=draw(st.dictionaries(_text, _finite, max_size=5)),
        site_type=draw(st.none() | _text),
        site_type_confidence=draw(st.none() | _finite),
        security_results=draw(st.dictionaries(_text, _json, max_size=4)),
        pages_scanned=draw(_count),
        elapsed_seconds=draw(st.none() | _finite),
        error_message=draw(st.none() | _text),
        recommendations=draw(st.none() | _json),
        domain_info=draw(st.none() | _json),
        overrides=draw(st.none() | _json),
        errors=draw(st.none() | _json),
        extra=draw(st.dictionaries(_text, _json, max_size=4)),
        findings=draw(st.lists(findings(), max_size=4)),
        screenshots=draw(screenshots(audit_id)),
    )


def sample_audit(audit_id: str = "audit-1", **changes: Any) -> vs.Audit:
    """A realistic, fully populated audit."""
    created = datetime(2026, 5, 4, 12, 30, 15, 123456, tzinfo=UTC)
    audit = vs.Audit(
        id=audit_id,
        url="https://shop.example/checkout?ref=ü",
        tier="deep",
        verdict_mode="expert",
        status=vs.AuditStatus.COMPLETED,
        created_at=created,
        started_at=created + timedelta(seconds=1, microseconds=7),
        completed_at=created + timedelta(seconds=42, microseconds=999999),
        updated_at=created + timedelta(seconds=43),
        trust_score=0.1 + 0.2,
        risk_level="high",
        narrative="Countdown timer resets on reload. 🕒 «urgency»\nSecond line.",
        signal_scores={"visual": 0.35, "temporal": 1, "legal": -0.0},
        site_type="ecommerce",
        site_type_confidence=0.875,
        security_results={"tls": {"grade": "A", "hsts": True}, "headers": [1, 2.5, None, "x"]},
        pages_scanned=7,
        elapsed_seconds=41.999,
        error_message=None,
        findings=(
            vs.Finding("urgency", "fake_timer", "high", 0.92, "Timer resets", 0, "timer.js:12"),
            vs.Finding("sneaking", "pre_checked", "medium", 0.5, "Box pre-checked"),
        ),
        screenshots=(
            vs.Screenshot(0, "landing", f"{audit_id}/0000.png", 1234, "image/png", "a" * 64),
            vs.Screenshot(2, "checkout", f"{audit_id}/0002.jpg", 99, "image/jpeg", "0" * 64),
        ),
    )
    return attrs.evolve(audit, **changes) if changes else audit


BAD_KEYS = [
    "../../etc/passwd",
    "..",
    ".",
    "/abs",
    "a//b",
    "a/./b",
    "a/../b",
    "a\\b",
    "nul\x00byte",
    "",
    "trailing/",
    ".hidden",
    "sp ace",
    "x" * 129,
]

_hypothesis = settings(
    max_examples=30,
    deadline=None,
    # one contract method runs for many subclasses (executors), each with its own store
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)


def _unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def _needs(store: Any, capability: vs.Capability) -> None:
    """Skip the calling test unless ``store`` declares ``capability``."""
    if capability not in vs.capabilities_of(store):
        pytest.skip(f"{type(store).__name__} does not declare the {capability.value!r} capability")


def _lacks(store: Any, capability: vs.Capability) -> None:
    """Skip the calling test if ``store`` declares ``capability``."""
    if capability in vs.capabilities_of(store):
        pytest.skip(f"{type(store).__name__} declares the {capability.value!r} capability")


def _reopener(request: pytest.FixtureRequest, name: str) -> Callable[[], Any]:
    try:
        return request.getfixturevalue(name)  # type: ignore[no-any-return]
    except pytest.FixtureLookupError:
        pytest.skip(f"no {name} fixture: durability across close() is not tested")


def _in_threads(work: Callable[[int], None], count: int) -> None:
    """Run ``work(0..count-1)`` in threads started together; re-raise the first failure."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(worker: int) -> None:
        try:
            start.wait()
            work(worker)
        except BaseException as exc:  # collected: raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _raises(error: type[BaseException], call: Callable[..., Any], *args: Any) -> None:
    """``call(*args)`` raises ``error``; a failure names the arguments (loops over bad input)."""
    shown = f"{getattr(call, '__name__', 'call')}({', '.join(map(repr, args))})"
    try:
        call(*args)
    except error:
        return
    except Exception as exc:
        raise AssertionError(
            f"{shown} raised {type(exc).__name__}: {exc}, not {error.__name__}"
        ) from exc
    raise AssertionError(f"{shown} did not raise {error.__name__}")


def _forged(audit_id: str) -> vs.Audit:
    """An audit with an invalid id, as a caller that bypassed the model's checks could make."""
    audit = vs.Audit(id="placeholder", url="https://forged.example")
    object.__setattr__(audit, "id", audit_id)
    return audit


def _check_declaration(store: Any) -> None:
    declared = getattr(store, "capabilities", None)
    if declared is not None:
        assert isinstance(declared, frozenset | set), "capabilities must be a frozenset of str"
        assert all(isinstance(c, str) for c in declared), "capabilities must hold str values"
    vs.capabilities_of(store)  # must not raise


# -- the audit store contract --------------------------------------------------------------


class AuditStoreContract:
    """Behaviour every ``AuditStore`` must have. Provide an ``audit_store`` fixture."""

    pytestmark = pytest.mark.veritas_contract

    def test_capabilities_are_a_frozenset_of_str(self, audit_store: Any) -> None:
        _check_declaration(audit_store)

    # -- round trips

    def test_round_trip_is_equal(self, audit_store: Any) -> None:
        audit = sample_audit()
        audit_store.create(audit)
        got = audit_store.get(audit.id)
        assert got == audit
        assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)

    def test_minimal_audit_round_trips(self, audit_store: Any) -> None:
        audit = vs.Audit(id="m", url="https://example.com")
        audit_store.create(audit)
        assert audit_store.get("m") == audit

    @_hypothesis
    @given(data=st.data())
    def test_generated_audits_round_trip(self, audit_store: Any, data: Any) -> None:
        audit = data.draw(audits(audit_id=_unique()))
        audit_store.create(audit)
        assert audit_store.get(audit.id) == audit
        changed = data.draw(audits(audit_id=audit.id))
        audit_store.update(changed)
        assert audit_store.get(audit.id) == changed

    # -- not found, create twice, overwrite, delete

    def test_get_missing_is_none(self, audit_store: Any) -> None:
        assert audit_store.get("no-such-audit") is None

    def test_create_twice_raises_and_keeps_first(self, audit_store: Any) -> None:
        first = sample_audit(narrative="first")
        audit_store.create(first)
        with pytest.raises(vs.AuditExists):
            audit_store.create(sample_audit(narrative="second"))
        assert audit_store.get(first.id) == first

    def test_update_replaces_whole_record(self, audit_store: Any) -> None:
        audit = sample_audit()
        audit_store.create(audit)
        changed = attrs.evolve(
            audit,
            status=vs.AuditStatus.ERROR,
            findings=(),
            screenshots=audit.screenshots[:1],
            narrative=None,
            error_message="boom",
            signal_scores={},
        )
        audit_store.update(changed)
        assert audit_store.get(audit.id) == changed

    def test_update_missing_raises(self, audit_store: Any) -> None:
        with pytest.raises(vs.AuditNotFound):
            audit_store.update(sample_audit("never-created"))
        assert audit_store.get("never-created") is None

    def test_delete(self, audit_store: Any) -> None:
        audit_store.create(sample_audit("gone"))
        audit_store.create(sample_audit("kept"))
        assert audit_store.delete("gone") is True
        assert audit_store.get("gone") is None
        assert audit_store.delete("gone") is False
        assert audit_store.get("kept") == sample_audit("kept")
        audit_store.create(sample_audit("gone"))  # the id can be used again
        assert audit_store.get("gone") == sample_audit("gone")

    def test_delete_missing_is_false(self, audit_store: Any) -> None:
        assert audit_store.delete("never-there") is False

    # -- keys

    def test_ids_are_distinct_and_case_sensitive(self, audit_store: Any) -> None:
        ids = ["Case", "case", "a.b", "a-b", "a_b", "A.b", "9", "x" * 128]
        written = [
            vs.Audit(id=audit_id, url=f"https://{i}.example") for i, audit_id in enumerate(ids)
        ]
        for audit in written:
            audit_store.create(audit)
        for audit in written:
            assert audit_store.get(audit.id) == audit
        assert audit_store.delete("case") is True
        assert audit_store.get("Case") is not None

    def test_bad_ids_raise_invalid_key_and_write_nothing(self, audit_store: Any) -> None:
        # one test over every bad id: a fresh store per id would make this the slowest test
        for bad in [*BAD_KEYS, None, 42, b"bytes"]:
            _raises(vs.InvalidKey, audit_store.get, bad)
            _raises(vs.InvalidKey, audit_store.delete, bad)
            if isinstance(bad, str):
                # the store checks ids itself, even of an audit that slipped past the model
                _raises(vs.InvalidKey, audit_store.create, _forged(bad))
                _raises(vs.InvalidKey, audit_store.update, _forged(bad))
        if vs.Capability.LIST in vs.capabilities_of(audit_store):
            assert audit_store.list().items == ()

    # -- listing and pagination

    def test_list_empty(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        page = audit_store.list()
        assert page.items == () and page.next_cursor is None

    def test_list_returns_the_stored_records(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        audit = sample_audit()
        audit_store.create(audit)
        assert audit_store.list() == vs.AuditPage((audit,), None)

    def test_list_newest_first_across_pages(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        written = []
        for i in range(23):
            # pairs share a created_at, so the id breaks the tie
            audit = vs.Audit(id=f"a{i:02d}", url="u", created_at=base + timedelta(seconds=i // 2))
            audit_store.create(audit)
            written.append(audit)
        expected = sorted(written, key=lambda a: (a.created_at, a.id), reverse=True)
        seen: list[vs.Audit] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = audit_store.list(limit=10, cursor=cursor)
            assert isinstance(page.items, tuple)
            seen.extend(page.items)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 3
        assert seen == expected

    def test_full_last_page_has_no_cursor(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(6):
            audit_store.create(vs.Audit(id=f"f{i}", url="u", created_at=base + timedelta(days=i)))
        first = audit_store.list(limit=3)
        second = audit_store.list(limit=3, cursor=first.next_cursor)
        assert [a.id for a in second.items] == ["f2", "f1", "f0"]
        assert second.next_cursor is None  # no empty page after a full last one

    def test_page_by_page_with_limit_one_and_ties(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        same = datetime(2026, 3, 1, 8, 0, 0, 1, tzinfo=UTC)
        ids = ["B", "a", "b", "a.1", "A"]
        for audit_id in ids:
            audit_store.create(vs.Audit(id=audit_id, url="u", created_at=same))
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(len(ids) + 1):
            page = audit_store.list(limit=1, cursor=cursor)
            seen.extend(a.id for a in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == sorted(ids, reverse=True)  # ids compare by code point

    def test_insert_between_pages_shifts_nothing(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(6):
            audit_store.create(vs.Audit(id=f"p{i}", url="u", created_at=base + timedelta(hours=i)))
        first = audit_store.list(limit=3)
        assert [a.id for a in first.items] == ["p5", "p4", "p3"]
        audit_store.create(vs.Audit(id="newer", url="u", created_at=base + timedelta(days=1)))
        audit_store.delete("p4")  # removing an item already seen shifts nothing either
        second = audit_store.list(limit=3, cursor=first.next_cursor)
        assert [a.id for a in second.items] == ["p2", "p1", "p0"]

    def test_cursor_is_a_position_not_a_token(self, audit_store: Any) -> None:
        # cursors are shared by every backend: one from vs.encode_cursor works here
        _needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(4):
            audit_store.create(vs.Audit(id=f"c{i}", url="u", created_at=base + timedelta(hours=i)))
        probe = vs.Audit(id="c9", url="u", created_at=base + timedelta(hours=2))  # not stored
        page = audit_store.list(cursor=vs.encode_cursor(probe))
        assert [a.id for a in page.items] == ["c2", "c1", "c0"]

    def test_list_filters_by_status(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        base = datetime(2026, 1, 1, tzinfo=UTC)
        statuses = list(vs.AuditStatus) * 3
        for i, status in enumerate(statuses):
            audit_store.create(
                vs.Audit(id=f"s{i}", url="u", status=status, created_at=base + timedelta(minutes=i))
            )
        done = audit_store.list(status=vs.AuditStatus.COMPLETED, limit=2)
        assert [a.status for a in done.items] == [vs.AuditStatus.COMPLETED] * 2
        rest = audit_store.list(status="completed", limit=2, cursor=done.next_cursor)
        assert len(rest.items) == 1 and rest.next_cursor is None

    def test_list_skips_deleted_audits(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        for audit_id in ("l1", "l2", "l3"):
            audit_store.create(vs.Audit(id=audit_id, url="u"))
        audit_store.delete("l2")
        assert {a.id for a in audit_store.list().items} == {"l1", "l3"}

    def test_bad_list_arguments_raise(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.LIST)
        for limit in (0, -1, 10_001, True, 2.5, "10"):
            with pytest.raises(ValueError):
                audit_store.list(limit=limit)
        with pytest.raises(ValueError):
            audit_store.list(status="finished")
        with pytest.raises(vs.InvalidCursor):
            audit_store.list(cursor="not-a-cursor")

    def test_list_without_the_capability_raises_not_implemented(self, audit_store: Any) -> None:
        _lacks(audit_store, vs.Capability.LIST)
        with pytest.raises(NotImplementedError):
            audit_store.list()

    def test_the_whole_service_result_round_trips(self, audit_store: Any) -> None:
        audit = sample_audit(
            "full-1",
            recommendations=["Avoid", {"why": "timer", "weight": 0.5}],
            domain_info={"age_days": 12, "registrar": "X", "inconsistencies": [], "ip": None},
            overrides={"risk_level": {"from": "low", "to": "high"}},
            errors=[],
            extra={"future_key": {"nested": [1, None, "ü"]}, "flag": True},
            findings=(vs.Finding("c", "p", "high", 1.0, "d", None, None, "f-1", "In plain words"),),
        )
        audit_store.create(audit)
        assert audit_store.get("full-1") == audit
        assert audit_store.get("full-1").screenshots_count == len(audit.screenshots)

    # -- list filters (plugin API 1.1)

    def test_list_filters_combine_and_page(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.FILTERS)
        base = datetime(2026, 2, 1, tzinfo=UTC)
        for i in range(12):
            audit_store.create(
                vs.Audit(
                    id=f"f{i:02d}", url=f"https://site{i % 2}.example/",
                    risk_level=("low", "high", "critical")[i % 3],
                    status=vs.AuditStatus.COMPLETED if i % 4 else vs.AuditStatus.ERROR,
                    created_at=base + timedelta(minutes=i // 2),
                )
            )  # fmt: skip

        def pages(**filters: Any) -> list[str]:
            ids, cursor = [], None
            while True:
                page = audit_store.list(limit=2, cursor=cursor, **filters)
                ids += [a.id for a in page.items]
                if (cursor := page.next_cursor) is None:
                    return ids

        assert pages(risk_level="high") == ["f10", "f07", "f04", "f01"]
        assert pages(risk_level="high", status="completed") == ["f10", "f07", "f01"]
        assert pages(url="https://site0.example/", order="oldest") == [
            f"f{i:02d}" for i in range(0, 12, 2)
        ]
        window = {
            "created_after": base + timedelta(minutes=2),
            "created_before": base + timedelta(minutes=4),
        }
        assert pages(**window) == ["f07", "f06", "f05", "f04"]
        assert pages(order="oldest", **window) == ["f04", "f05", "f06", "f07"]
        with pytest.raises(ValueError):
            audit_store.list(order="random")

    # -- the event log (plugin API 1.1)

    def test_events_are_numbered_in_order_and_read_after(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.EVENTS)
        audit_store.create(vs.Audit(id="ev-1", url="u"))
        assert audit_store.events("ev-1") == ()
        first = audit_store.append_events(
            "ev-1", [vs.AuditEvent("phase_start", {"phase": "crawl"}), vs.AuditEvent("log_entry")]
        )
        assert [e.seq for e in first] == [1, 2]
        (third,) = audit_store.append_events("ev-1", [vs.AuditEvent("finding", {"id": "f-1"})])
        assert third.seq == 3
        assert audit_store.events("ev-1") == (*first, third)
        assert audit_store.events("ev-1", after=1, limit=1) == (first[1],)
        assert audit_store.events("ev-1", after=3) == ()

    def test_numbered_events_are_stored_once(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.EVENTS)
        audit_store.create(vs.Audit(id="ev-2", url="u"))
        copy = (vs.AuditEvent("a", {}, seq=1), vs.AuditEvent("b", {"x": [1]}, seq=2))
        audit_store.append_events("ev-2", copy)
        audit_store.append_events("ev-2", copy)  # a replay: nothing twice
        assert audit_store.events("ev-2") == copy
        (next_one,) = audit_store.append_events("ev-2", [vs.AuditEvent("c")])
        assert next_one.seq == 3

    def test_events_of_a_missing_or_deleted_audit(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.EVENTS)
        with pytest.raises(vs.AuditNotFound):
            audit_store.events("ev-none")
        with pytest.raises(vs.AuditNotFound):
            audit_store.append_events("ev-none", [vs.AuditEvent("x")])
        audit_store.create(vs.Audit(id="ev-3", url="u"))
        audit_store.append_events("ev-3", [vs.AuditEvent("x")])
        audit_store.delete("ev-3")
        audit_store.create(vs.Audit(id="ev-3", url="u"))  # the same id again starts empty
        assert audit_store.events("ev-3") == ()

    def test_bad_events_raise_and_write_nothing(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.EVENTS)
        audit_store.create(vs.Audit(id="ev-4", url="u"))
        with pytest.raises(TypeError):
            audit_store.append_events("ev-4", [{"type": "x"}])
        with pytest.raises(ValueError):
            audit_store.events("ev-4", after=-1)
        with pytest.raises(vs.InvalidKey):
            audit_store.events("../x")
        assert audit_store.events("ev-4") == ()

    # -- threads

    def test_concurrent_threads(self, audit_store: Any) -> None:
        def work(worker: int) -> None:
            for i in range(10):
                audit = vs.Audit(id=f"w{worker}-{i}", url=f"https://{worker}.example/{i}")
                audit_store.create(audit)
                done = attrs.evolve(audit, status=vs.AuditStatus.COMPLETED, trust_score=i)
                audit_store.update(done)
                assert audit_store.get(audit.id) == done

        _in_threads(work, 8)
        ids = {f"w{w}-{i}" for w in range(8) for i in range(10)}
        if vs.Capability.LIST in vs.capabilities_of(audit_store):
            assert {a.id for a in audit_store.list(limit=1000).items} == ids
        assert all(audit_store.get(audit_id) is not None for audit_id in ids)

    def test_concurrent_creates_of_one_id_have_one_winner(self, audit_store: Any) -> None:
        contenders = [vs.Audit(id="race", url=f"https://{w}.example") for w in range(8)]
        winners: list[int] = []

        def work(worker: int) -> None:
            try:
                audit_store.create(contenders[worker])
            except vs.AuditExists:
                return
            winners.append(worker)

        _in_threads(work, 8)
        assert len(winners) == 1
        assert audit_store.get("race") == contenders[winners[0]]

    # -- close

    def test_close_twice_is_harmless(self, audit_store: Any) -> None:
        audit_store.create(sample_audit())
        audit_store.close()
        audit_store.close()

    def test_data_survives_close_and_reopen(
        self, audit_store: Any, request: pytest.FixtureRequest
    ) -> None:
        reopen = _reopener(request, "reopen_audit_store")
        audit = sample_audit()
        audit_store.create(audit)
        audit_store.create(sample_audit("deleted"))
        audit_store.delete("deleted")
        audit_store.close()
        again = reopen()
        try:
            assert again.get(audit.id) == audit
            assert again.get("deleted") is None
            again.update(attrs.evolve(audit, narrative="after reopen"))
            assert again.get(audit.id).narrative == "after reopen"
        finally:
            again.close()

    # -- native async

    def test_native_async(self, audit_store: Any) -> None:
        _needs(audit_store, vs.Capability.NATIVE_ASYNC)
        aio = audit_store.aio
        audit = sample_audit("async-1")

        async def run() -> None:
            await aio.create(audit)
            assert await aio.get(audit.id) == audit
            changed = attrs.evolve(audit, narrative="async")
            await aio.update(changed)
            assert audit_store.get(audit.id) == changed  # one store, two faces
            if vs.Capability.LIST in vs.capabilities_of(audit_store):
                assert (await aio.list()).items == (changed,)
            assert await aio.delete(audit.id) is True
            assert await aio.get(audit.id) is None

        asyncio.run(run())


# -- the blob store contract ---------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


class BlobStoreContract:
    """Behaviour every ``BlobStore`` must have. Provide a ``blob_store`` fixture."""

    pytestmark = pytest.mark.veritas_contract

    def test_capabilities_are_a_frozenset_of_str(self, blob_store: Any) -> None:
        _check_declaration(blob_store)

    # -- round trips

    def test_put_get_round_trip(self, blob_store: Any) -> None:
        info = blob_store.put("audit-1/0000.png", PNG, "image/png")
        assert info == vs.BlobInfo.of("audit-1/0000.png", PNG, "image/png")
        assert blob_store.get("audit-1/0000.png") == PNG
        assert blob_store.exists("audit-1/0000.png") is True

    def test_empty_blob(self, blob_store: Any) -> None:
        assert blob_store.put("empty", b"") == vs.BlobInfo.of("empty", b"")
        assert blob_store.get("empty") == b""
        assert blob_store.exists("empty")

    def test_large_blob(self, blob_store: Any) -> None:
        data = bytes(range(256)) * 12_000 + b"end"  # about 3 MB
        assert blob_store.put("big/blob.bin", data).size == len(data)
        assert blob_store.get("big/blob.bin") == data

    @_hypothesis
    @given(key=blob_keys(), data=st.binary(max_size=5000))
    def test_generated_blobs_round_trip(self, blob_store: Any, key: str, data: bytes) -> None:
        key = f"{_unique('h')}/{key}"
        info = blob_store.put(key, data)
        assert (info.size, info.sha256) == (len(data), vs.BlobInfo.of(key, data).sha256)
        assert blob_store.get(key) == data

    def test_bytes_like_data_is_accepted(self, blob_store: Any) -> None:
        blob_store.put("ba", bytearray(b"from a bytearray"))
        blob_store.put("mv", memoryview(b"from a memoryview"))
        assert blob_store.get("ba") == b"from a bytearray"
        assert blob_store.get("mv") == b"from a memoryview"

    def test_non_bytes_data_is_a_type_error_and_writes_nothing(self, blob_store: Any) -> None:
        for bad in ["text", None, 42, [1, 2]]:
            _raises(TypeError, blob_store.put, "not-bytes", bad)
        assert blob_store.exists("not-bytes") is False

    # -- overwrite, not found, delete

    def test_overwrite(self, blob_store: Any) -> None:
        blob_store.put("k", b"one", "text/plain")
        info = blob_store.put("k", b"two")
        assert info == vs.BlobInfo.of("k", b"two")
        assert blob_store.get("k") == b"two"
        if vs.Capability.LIST in vs.capabilities_of(blob_store):
            assert list(blob_store.list()) == ["k"]

    def test_missing(self, blob_store: Any) -> None:
        with pytest.raises(vs.BlobNotFound):
            blob_store.get("nothing/here")
        with pytest.raises(KeyError):  # BlobNotFound is a KeyError too
            blob_store.get("nothing/here")
        assert blob_store.exists("nothing/here") is False

    def test_a_folder_is_not_a_blob(self, blob_store: Any) -> None:
        blob_store.put("dir/inner", b"x")
        assert blob_store.exists("dir") is False
        with pytest.raises(vs.BlobNotFound):
            blob_store.get("dir")
        assert blob_store.delete("dir") is False
        assert blob_store.get("dir/inner") == b"x"

    def test_delete(self, blob_store: Any) -> None:
        blob_store.put("a/b", b"x")
        blob_store.put("a/c", b"y")
        assert blob_store.delete("a/b") is True
        assert blob_store.exists("a/b") is False
        assert blob_store.delete("a/b") is False
        with pytest.raises(vs.BlobNotFound):
            blob_store.get("a/b")
        assert blob_store.get("a/c") == b"y"
        blob_store.put("a/b", b"again")  # the key can be used again
        assert blob_store.get("a/b") == b"again"

    # -- keys

    def test_keys_are_distinct_and_case_sensitive(self, blob_store: Any) -> None:
        keys = ["Case", "case", "a.b", "a-b", "a_b", "x" * 128, "/".join("d" * 20)]
        for key in keys:
            blob_store.put(key, key.encode())
        for key in keys:
            assert blob_store.get(key) == key.encode()
        assert blob_store.delete("case") is True
        assert blob_store.get("Case") == b"Case"

    def test_bad_keys_raise_invalid_key_and_write_nothing(self, blob_store: Any) -> None:
        urls = vs.Capability.URLS in vs.capabilities_of(blob_store)
        for bad in [*BAD_KEYS, None, 42, b"bytes"]:
            _raises(vs.InvalidKey, blob_store.put, bad, b"evil")
            _raises(vs.InvalidKey, blob_store.get, bad)
            _raises(vs.InvalidKey, blob_store.exists, bad)
            _raises(vs.InvalidKey, blob_store.delete, bad)
            if urls:
                _raises(vs.InvalidKey, blob_store.url, bad)
        if vs.Capability.LIST in vs.capabilities_of(blob_store):
            assert list(blob_store.list()) == []

    # -- listing

    def test_list_is_a_sorted_plain_prefix(self, blob_store: Any) -> None:
        _needs(blob_store, vs.Capability.LIST)
        # "a/b" would be both a blob and a folder of "a/b/c": local disk cannot hold both
        keys = ["b/2", "a/b/c", "a/bc", "A", "a/a", "ab"]
        for key in keys:
            blob_store.put(key, key.encode())
        assert list(blob_store.list()) == sorted(keys)
        assert list(blob_store.list("a/b")) == ["a/b/c", "a/bc"]
        assert list(blob_store.list("a/")) == ["a/a", "a/b/c", "a/bc"]
        assert list(blob_store.list("a")) == ["a/a", "a/b/c", "a/bc", "ab"]
        assert list(blob_store.list("zzz")) == []
        assert list(blob_store.list("A")) == ["A"]

    def test_bad_list_prefix_raises_invalid_key(self, blob_store: Any) -> None:
        _needs(blob_store, vs.Capability.LIST)
        for bad in ["/abs", "../", "a/../", "a//", "a\\b", ".hidden", 5, None]:
            _raises(vs.InvalidKey, lambda p: list(blob_store.list(p)), bad)

    def test_list_without_the_capability_raises_not_implemented(self, blob_store: Any) -> None:
        _lacks(blob_store, vs.Capability.LIST)
        with pytest.raises(NotImplementedError):
            list(blob_store.list())

    # -- URLs

    def test_url_reads_the_blob(self, blob_store: Any) -> None:
        _needs(blob_store, vs.Capability.URLS)
        blob_store.put("u/1.png", PNG, "image/png")
        url = blob_store.url("u/1.png", expires=60)
        assert isinstance(url, str) and "u/1.png" in url
        if url.split(":", 1)[0] in ("file", "http", "https"):
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
                assert response.read() == PNG

    def test_url_bad_expires_is_a_value_error(self, blob_store: Any) -> None:
        _needs(blob_store, vs.Capability.URLS)
        blob_store.put("u/2.png", PNG)
        for expires in [0, -5, True, 1.5, "60"]:
            _raises(ValueError, lambda e: blob_store.url("u/2.png", expires=e), expires)

    def test_url_without_the_capability_raises_not_implemented(self, blob_store: Any) -> None:
        _lacks(blob_store, vs.Capability.URLS)
        blob_store.put("u/1.png", PNG)
        with pytest.raises(NotImplementedError):
            blob_store.url("u/1.png")

    # -- threads

    def test_concurrent_threads(self, blob_store: Any) -> None:
        def work(worker: int) -> None:
            for i in range(10):
                key = f"w{worker}/{i:03d}"
                data = f"{worker}-{i}".encode() * 100
                blob_store.put(key, data)
                assert blob_store.get(key) == data

        _in_threads(work, 6)
        keys = [f"w{w}/{i:03d}" for w in range(6) for i in range(10)]
        if vs.Capability.LIST in vs.capabilities_of(blob_store):
            assert list(blob_store.list()) == sorted(keys)
        assert all(blob_store.exists(key) for key in keys)

    def test_readers_never_see_a_partial_blob(self, blob_store: Any) -> None:
        versions = [bytes([65 + v]) * 256 * 1024 for v in range(2)]
        blob_store.put("atomic", versions[0])
        writers_left = [2]
        lock = threading.Lock()
        reads = [0]

        def work(worker: int) -> None:
            if worker < 2:  # two writers, alternating the two versions
                try:
                    for i in range(8):
                        blob_store.put("atomic", versions[(worker + i) % 2])
                finally:  # a failing writer must not leave the reader waiting forever
                    with lock:
                        writers_left[0] -= 1
                return
            while writers_left[0] or reads[0] < 3:  # one reader, for as long as they write
                data = blob_store.get("atomic")
                assert data in versions, f"read {len(data)} bytes that no writer wrote"
                reads[0] += 1

        _in_threads(work, 3)
        assert blob_store.get("atomic") in versions

    # -- close

    def test_close_twice_is_harmless(self, blob_store: Any) -> None:
        blob_store.put("c", b"x")
        blob_store.close()
        blob_store.close()

    def test_data_survives_close_and_reopen(
        self, blob_store: Any, request: pytest.FixtureRequest
    ) -> None:
        reopen = _reopener(request, "reopen_blob_store")
        blob_store.put("keep/1.png", PNG, "image/png")
        blob_store.put("gone/1.png", PNG)
        blob_store.delete("gone/1.png")
        blob_store.close()
        again = reopen()
        try:
            assert again.get("keep/1.png") == PNG
            assert again.exists("gone/1.png") is False
            if vs.Capability.LIST in vs.capabilities_of(again):
                assert list(again.list()) == ["keep/1.png"]
        finally:
            again.close()

    # -- native async

    def test_native_async(self, blob_store: Any) -> None:
        _needs(blob_store, vs.Capability.NATIVE_ASYNC)
        aio = blob_store.aio

        async def run() -> None:
            assert await aio.put("as/1", b"async") == vs.BlobInfo.of("as/1", b"async")
            assert await aio.get("as/1") == b"async"
            assert blob_store.get("as/1") == b"async"  # one store, two faces
            assert await aio.exists("as/1") is True
            if vs.Capability.LIST in vs.capabilities_of(blob_store):
                assert [key async for key in aio.list("as/")] == ["as/1"]
            assert await aio.delete("as/1") is True
            with pytest.raises(vs.BlobNotFound):
                await aio.get("as/1")

        asyncio.run(run())
