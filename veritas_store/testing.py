"""The conformance kit: one behaviour suite that every backend must pass.

Subclass a contract in your test module and provide a fixture that yields a fresh, empty
store::

    import pytest
    from veritas_store.testing import AuditStoreContract

    class TestMyStore(AuditStoreContract):
        @pytest.fixture
        def audit_store(self, tmp_path):
            store = MyStore(path=tmp_path)
            yield store
            store.close()

``BlobStoreContract`` works the same way with a ``blob_store`` fixture. Requires pytest and
hypothesis (``pip install veritas-store[testing]``). The strategies ``audits()``,
``audit_ids()`` and ``blob_keys()`` are public too, for your own property tests.
"""

from __future__ import annotations

import string
import threading
import uuid
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
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
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


# -- the audit store contract --------------------------------------------------------------


class AuditStoreContract:
    """Behaviour every ``AuditStore`` must have. Provide an ``audit_store`` fixture."""

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
        assert audit_store.delete("gone") is True
        assert audit_store.get("gone") is None
        assert audit_store.delete("gone") is False
        audit_store.create(sample_audit("gone"))  # the id can be used again
        assert audit_store.get("gone") == sample_audit("gone")

    def test_list_empty(self, audit_store: Any) -> None:
        page = audit_store.list()
        assert page.items == () and page.next_cursor is None

    def test_list_newest_first_across_pages(self, audit_store: Any) -> None:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        written = []
        for i in range(23):
            # pairs share a created_at, so the id breaks the tie
            audit = vs.Audit(id=f"a{i:02d}", url="u", created_at=base + timedelta(seconds=i // 2))
            audit_store.create(audit)
            written.append(audit)
        expected = sorted(written, key=lambda a: (a.created_at, a.id), reverse=True)
        seen, cursor, pages = [], None, 0
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

    def test_insert_between_pages_shifts_nothing(self, audit_store: Any) -> None:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(6):
            audit_store.create(vs.Audit(id=f"p{i}", url="u", created_at=base + timedelta(hours=i)))
        first = audit_store.list(limit=3)
        assert [a.id for a in first.items] == ["p5", "p4", "p3"]
        audit_store.create(vs.Audit(id="newer", url="u", created_at=base + timedelta(days=1)))
        second = audit_store.list(limit=3, cursor=first.next_cursor)
        assert [a.id for a in second.items] == ["p2", "p1", "p0"]

    def test_list_filters_by_status(self, audit_store: Any) -> None:
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

    def test_bad_list_arguments_raise(self, audit_store: Any) -> None:
        with pytest.raises(ValueError):
            audit_store.list(limit=0)
        with pytest.raises(ValueError):
            audit_store.list(status="finished")
        with pytest.raises(vs.InvalidCursor):
            audit_store.list(cursor="not-a-cursor")

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_bad_ids_raise_invalid_key_and_write_nothing(self, audit_store: Any, bad: str) -> None:
        with pytest.raises(vs.InvalidKey):
            audit_store.get(bad)
        with pytest.raises(vs.InvalidKey):
            audit_store.delete(bad)
        assert audit_store.list().items == ()

    def test_concurrent_threads(self, audit_store: Any) -> None:
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for i in range(10):
                    audit = vs.Audit(id=f"w{worker}-{i}", url=f"https://{worker}.example/{i}")
                    audit_store.create(audit)
                    done = attrs.evolve(audit, status=vs.AuditStatus.COMPLETED, trust_score=i)
                    audit_store.update(done)
                    assert audit_store.get(audit.id) == done
            except BaseException as exc:  # collected: asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        page = audit_store.list(limit=1000)
        assert len(page.items) == 80
        assert {a.id for a in page.items} == {f"w{w}-{i}" for w in range(8) for i in range(10)}


# -- the blob store contract ---------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


class BlobStoreContract:
    """Behaviour every ``BlobStore`` must have. Provide a ``blob_store`` fixture."""

    def test_put_get_round_trip(self, blob_store: Any) -> None:
        info = blob_store.put("audit-1/0000.png", PNG, "image/png")
        assert info == vs.BlobInfo.of("audit-1/0000.png", PNG, "image/png")
        assert blob_store.get("audit-1/0000.png") == PNG

    def test_empty_blob(self, blob_store: Any) -> None:
        assert blob_store.put("empty", b"").size == 0
        assert blob_store.get("empty") == b""
        assert blob_store.exists("empty")

    @_hypothesis
    @given(key=blob_keys(), data=st.binary(max_size=5000))
    def test_generated_blobs_round_trip(self, blob_store: Any, key: str, data: bytes) -> None:
        key = f"{_unique('h')}/{key}"
        info = blob_store.put(key, data)
        assert (info.size, info.sha256) == (len(data), vs.BlobInfo.of(key, data).sha256)
        assert blob_store.get(key) == data

    def test_overwrite(self, blob_store: Any) -> None:
        blob_store.put("k", b"one")
        blob_store.put("k", b"two")
        assert blob_store.get("k") == b"two"
        assert list(blob_store.list()) == ["k"]

    def test_missing(self, blob_store: Any) -> None:
        with pytest.raises(vs.BlobNotFound):
            blob_store.get("nothing/here")
        assert blob_store.exists("nothing/here") is False

    def test_delete(self, blob_store: Any) -> None:
        blob_store.put("a/b", b"x")
        assert blob_store.delete("a/b") is True
        assert blob_store.exists("a/b") is False
        assert blob_store.delete("a/b") is False
        with pytest.raises(vs.BlobNotFound):
            blob_store.get("a/b")

    def test_list_is_a_sorted_plain_prefix(self, blob_store: Any) -> None:
        keys = ["b/2", "a/b/c", "a/bc", "a/b", "A", "a/a", "ab"]
        for key in keys:
            # "a/b" is both a blob and a folder of "a/b/c" on a filesystem: allowed by keys
            if key == "a/b":
                continue
            blob_store.put(key, key.encode())
        stored = sorted(k for k in keys if k != "a/b")
        assert list(blob_store.list()) == stored
        assert list(blob_store.list("a/b")) == ["a/b/c", "a/bc"]
        assert list(blob_store.list("a/")) == ["a/a", "a/b/c", "a/bc"]
        assert list(blob_store.list("zzz")) == []

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_bad_keys_raise_invalid_key_and_write_nothing(self, blob_store: Any, bad: str) -> None:
        with pytest.raises(vs.InvalidKey):
            blob_store.put(bad, b"evil")
        with pytest.raises(vs.InvalidKey):
            blob_store.get(bad)
        with pytest.raises(vs.InvalidKey):
            blob_store.exists(bad)
        with pytest.raises(vs.InvalidKey):
            blob_store.delete(bad)
        assert list(blob_store.list()) == []

    def test_url_or_not_implemented(self, blob_store: Any) -> None:
        blob_store.put("u/1.png", PNG)
        try:
            url = blob_store.url("u/1.png", expires=60)
        except NotImplementedError:
            return
        assert isinstance(url, str) and "u/1.png" in url

    def test_concurrent_threads(self, blob_store: Any) -> None:
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for i in range(10):
                    key = f"w{worker}/{i:03d}"
                    data = f"{worker}-{i}".encode() * 100
                    blob_store.put(key, data)
                    assert blob_store.get(key) == data
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(list(blob_store.list())) == 60
