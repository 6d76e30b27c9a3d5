"""Resumable copy state: where an interrupted ``copy`` stopped, kept in a small JSON file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..wiring.config import Config
from .pairs import Pair


def default_state_path(cfg: Config, source: str, target: str) -> Path:
    """``veritas-data/copy-<source>-to-<target>.json`` in the config file's folder."""
    safe = [re.sub(r"[^A-Za-z0-9_.-]", "_", n) for n in (source, target)]
    return cfg.base_dir / "veritas-data" / f"copy-{safe[0]}-to-{safe[1]}.json"


def fingerprint(cfg: Config, pairs: Iterable[Pair]) -> str:
    """Identifies what a checkpoint is about (types and options, hashed: no secrets kept)."""
    described = [
        [p.kind, name, b.type, b.options]
        for p in pairs
        for name in (p.source, p.target)
        for b in [cfg.section(p.kind).backends[name]]
    ]
    raw = json.dumps(described, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()


class Checkpoint:
    """Where an interrupted copy stopped, per section, in a small JSON file.

    Written atomically (temporary file, fsync, rename) after every page; a checkpoint made for
    other backends (the names now point elsewhere) is ignored. ``path=None`` keeps nothing.
    """

    def __init__(self, path: Path | None, fingerprint: str = "", *, restart: bool = False):
        self.path = path
        self._made_folder = False  # so clear() removes a folder only this copy created
        self._state: dict[str, Any] = {"fingerprint": fingerprint, "sections": {}}
        if path is None or restart or not path.exists():
            return
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # unreadable: start over (the copy is idempotent)
        if isinstance(saved, dict) and saved.get("fingerprint") == fingerprint:
            sections = saved.get("sections")
            if isinstance(sections, dict):
                self._state["sections"] = sections

    def _section(self, kind: str) -> dict[str, Any]:
        return self._state["sections"].get(kind) or {}

    def position(self, kind: str) -> str | None:
        """The audit cursor or the last blob key done, or None to start at the beginning."""
        value = self._section(kind).get("position")
        return value if isinstance(value, str) else None

    def done_before(self, kind: str) -> int:
        value = self._section(kind).get("done", 0)
        return value if isinstance(value, int) else 0

    def finished(self, kind: str) -> bool:
        return self._section(kind).get("finished") is True

    def save(self, kind: str, position: str | None, done: int, finished: bool = False) -> None:
        self._state["sections"][kind] = {"position": position, "done": done, "finished": finished}
        if self.path is None:
            return
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._made_folder = True
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._state, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def clear(self) -> None:
        """The copy is complete: the next one starts from the beginning."""
        self._state["sections"] = {}
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            if self._made_folder:
                with contextlib.suppress(OSError):
                    self.path.parent.rmdir()  # only if empty
