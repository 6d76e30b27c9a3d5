"""``repair``: complete the writes the journal kept, from the backend that has them.

For every journaled item (entries are grouped by section and key, so an item written a
thousand times while a backend was down is repaired once), the source is the backend that has
the item's latest journaled write — the authoritative one, unless that is the backend that
failed — and every backend that may miss one of the item's writes is made to hold what the
source holds now: a copy, or no item if the source no longer has it (so a delete that could not
reach a backend is completed, and nothing comes back). Repairing twice changes nothing.

What was repaired leaves the journal; what still fails stays, with its error and one more
attempt counted. Writes still in flight in a live process on this host are left to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ..composite.journal import Entry, Journal

if TYPE_CHECKING:
    from ..wiring.stores import Stores


@attrs.frozen
class Unrepaired:
    """An item that could not be repaired, and why."""

    section: str
    key: str
    entries: int
    backends: tuple[str, ...]  # the backends that still miss it
    error: str


@attrs.define
class RepairReport:
    journal: str | None  # the journal's path; None when journaling is off
    entries: int = 0  # entries found
    items: int = 0  # distinct items repaired
    repaired: int = 0  # entries removed
    in_flight: int = 0  # entries left to a live writer
    failed: list[Unrepaired] = attrs.field(factory=list)

    @property
    def remaining(self) -> int:
        return self.entries - self.repaired

    @property
    def ok(self) -> bool:
        """Everything that could be repaired now was."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "journal": self.journal,
            "entries": self.entries,
            "items_repaired": self.items,
            "entries_repaired": self.repaired,
            "in_flight": self.in_flight,
            "remaining": self.remaining,
            "failed": [attrs.asdict(f) for f in self.failed],
            "ok": self.ok,
        }


def journal_of(stores: Stores) -> Journal | None:
    """The stores' journal, or the configured file when the stores do not write one now."""
    if stores.journal is not None:
        return stores.journal
    path = stores.config.journal
    return Journal(path) if path is not None and path.exists() else None


def pending(stores: Stores) -> int:
    """How many entries the journal holds."""
    journal = journal_of(stores)
    return journal.stats().entries if journal is not None else 0


def repair(stores: Stores, *, progress: Callable[[int, int], None] | None = None) -> RepairReport:
    """Replay the journal; ``progress(done, total)`` is called as entries are handled."""
    journal = journal_of(stores)
    report = RepairReport(str(journal.path) if journal is not None else None)
    if journal is None:
        return report
    try:
        entries = journal.entries()
        report.entries = len(entries)
        groups: dict[tuple[str, str], list[Entry]] = {}
        for entry in entries:
            groups.setdefault((entry.section, entry.key), []).append(entry)
        done = 0
        for (section, key), group in groups.items():
            _repair_item(stores, journal, section, key, group, report)
            done += len(group)
            if progress is not None:
                progress(done, report.entries)
    finally:
        if journal is not stores.journal:
            journal.close()
    return report


def _repair_item(
    stores: Stores,
    journal: Journal,
    section: str,
    key: str,
    group: list[Entry],
    report: RepairReport,
) -> None:
    ids = [e.id for e in group]
    if any(e.in_flight() for e in group):
        report.in_flight += len(group)
        return
    latest = group[-1]
    source = latest.leader or latest.targets[0]
    behind = sorted({name for e in group for name in e.behind} - {source})
    composite = stores.audits if section == "audits" else stores.blobs
    try:
        composite.sync_item(key, source, behind, latest.content_type)
    except Exception as exc:
        # a plain KeyError: a backend that is not open now (disabled in the config)
        error = exc.args[0] if type(exc) is KeyError else f"{type(exc).__name__}: {exc}"
        journal.failed_again(ids, error)
        report.failed.append(Unrepaired(section, key, len(group), tuple(behind), error))
        return
    journal.remove(ids)
    report.repaired += len(group)
    report.items += 1
