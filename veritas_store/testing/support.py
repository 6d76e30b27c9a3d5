"""What the contracts share: sample records, the kit's hypothesis settings, and helpers.

``sample_audit``, ``BAD_KEYS`` and ``PNG`` are re-exported by ``veritas_store.testing``; the
rest is the kit's own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings

import veritas_store as vs

# -- samples -----------------------------------------------------------------------------------


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
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


# -- helpers -----------------------------------------------------------------------------------

hypothesis_settings = settings(
    max_examples=30,
    deadline=None,
    # one contract method runs for many subclasses (executors), each with its own store
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)


def unique_id(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def needs(store: Any, capability: vs.Capability) -> None:
    """Skip the calling test unless ``store`` declares ``capability``."""
    if capability not in vs.capabilities_of(store):
        pytest.skip(f"{type(store).__name__} does not declare the {capability.value!r} capability")


def lacks(store: Any, capability: vs.Capability) -> None:
    """Skip the calling test if ``store`` declares ``capability``."""
    if capability in vs.capabilities_of(store):
        pytest.skip(f"{type(store).__name__} declares the {capability.value!r} capability")


def reopener(request: pytest.FixtureRequest, name: str) -> Callable[[], Any]:
    try:
        return request.getfixturevalue(name)  # type: ignore[no-any-return]
    except pytest.FixtureLookupError:
        pytest.skip(f"no {name} fixture: durability across close() is not tested")


def in_threads(work: Callable[[int], None], count: int) -> None:
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


def assert_raises(error: type[BaseException], call: Callable[..., Any], *args: Any) -> None:
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


def forged_audit(audit_id: str) -> vs.Audit:
    """An audit with an invalid id, as a caller that bypassed the model's checks could make."""
    audit = vs.Audit(id="placeholder", url="https://forged.example")
    object.__setattr__(audit, "id", audit_id)
    return audit


def check_declaration(store: Any) -> None:
    declared = getattr(store, "capabilities", None)
    if declared is not None:
        assert isinstance(declared, frozenset | set), "capabilities must be a frozenset of str"
        assert all(isinstance(c, str) for c in declared), "capabilities must hold str values"
    vs.capabilities_of(store)  # must not raise
