"""Operator tools over a config: copy and verify between backends, repair from the journal.

The library side of ``veritas-store copy``, ``verify`` and ``repair`` (see docs/operations.md
and docs/reliability.md). The modules: ``pairs`` (which backend pairs two config names give,
opening them), ``checkpoint`` (a resumable copy's state), ``copy``, ``verify`` and
``journal_repair``.
"""

from .checkpoint import Checkpoint, default_state_path
from .copy import CopyReport, copy_audits, copy_backends, copy_blobs
from .journal_repair import RepairReport, Unrepaired, pending, repair
from .pairs import MAX_DETAILS, PAGE_SIZE, Progress
from .verify import Difference, VerifyReport, verify_audits, verify_backends, verify_blobs

__all__ = [
    "MAX_DETAILS",
    "PAGE_SIZE",
    "Checkpoint",
    "CopyReport",
    "Difference",
    "Progress",
    "RepairReport",
    "Unrepaired",
    "VerifyReport",
    "copy_audits",
    "copy_backends",
    "copy_blobs",
    "default_state_path",
    "pending",
    "repair",
    "verify_audits",
    "verify_backends",
    "verify_blobs",
]
