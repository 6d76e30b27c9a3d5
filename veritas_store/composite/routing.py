"""Routing: which backends a composite reads and writes, in which order, and what it compares.

Without a migration, reads follow ``read_order`` and writes go to the first backend in read
order (the authoritative one), then to the others. A ``[<section>.migration]`` names a pair of
backends, ``from`` and ``to``, and a stage; the stage decides how the pair is used:

========== ================== =============== ========================= ===============
stage      reads              compares with   writes, in order          authoritative
========== ================== =============== ========================= ===============
off        from               -               from                      from
dualwrite  from               -               from, then to             from
shadow     from               to (sampled)    from, then to             from
live       to, then from      from (sampled)  to, then from             to
rampdown   to                 -               to, then from             to
complete   to                 -               to                        to
========== ================== =============== ========================= ===============

The side read and written first is authoritative. Backends outside the pair keep their place
after it: read in ``read_order``, written after the pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

STAGES = ("off", "dualwrite", "shadow", "live", "rampdown", "complete")

# stage -> (reads, writes, compared side): "F" is the from side, "T" the to side
_TABLE: dict[str, tuple[str, str, str | None]] = {
    "off": ("F", "F", None),
    "dualwrite": ("F", "FT", None),
    "shadow": ("F", "FT", "T"),
    "live": ("TF", "TF", "F"),
    "rampdown": ("T", "TF", None),
    "complete": ("T", "T", None),
}


@attrs.frozen
class Routing:
    """The backends by name: reads in order, writes in order, and the compared (shadow) side."""

    read: tuple[str, ...]
    write: tuple[str, ...]
    compare: str | None = None
    compare_ratio: float = 0.0
    stage: str | None = None  # None: no migration configured

    @property
    def authoritative(self) -> str:
        """The side read and written first."""
        return self.write[0]

    @property
    def ordered(self) -> bool:
        """Writes must go one after the other (a migration pins the order)."""
        return self.stage is not None


def stage_uses(stage: str, from_: str, to: str) -> set[str]:
    """The backends of the pair that a stage reads or writes."""
    reads, writes, compare = _TABLE[stage]
    sides = {"F": from_, "T": to}
    return {sides[s] for s in reads + writes + (compare or "")}


class Migration(Protocol):
    """What routing needs of a ``[<section>.migration]`` (``config.MigrationConfig`` has it).

    A protocol rather than the config class: ``config`` validates stages against the table
    here, so importing ``config`` back would be a cycle.
    """

    @property
    def from_(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def compare_ratio(self) -> float: ...


def route(order: Sequence[str], migration: Migration | None) -> Routing:
    """The routing of a section's enabled backends, in read order, under its migration if any."""
    if migration is None:
        return Routing(read=tuple(order), write=tuple(order))
    reads, writes, compare = _TABLE[migration.stage]
    sides = {"F": migration.from_, "T": migration.to}
    others = [n for n in order if n not in sides.values()]
    return Routing(
        read=tuple([sides[s] for s in reads] + others),
        write=tuple([sides[s] for s in writes] + others),
        compare=sides[compare] if compare else None,
        compare_ratio=migration.compare_ratio if compare else 0.0,
        stage=migration.stage,
    )
