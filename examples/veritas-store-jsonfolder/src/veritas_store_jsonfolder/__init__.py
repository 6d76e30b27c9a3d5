"""veritas-store-jsonfolder: an audit backend that keeps each audit as a JSON file.

Audit ``a1`` is the file ``<path>/a1.json``. Writes are atomic: the JSON goes to a hidden
temporary file in the same folder, is flushed to disk, and then takes the target's place in
one step (``os.link`` for create, which fails if the audit exists; ``os.replace`` for update),
so a reader sees the old record or the new one, never part of one.

Select it in a veritas-store config::

    [audits.backends.files]
    type = "jsonfolder"
    path = "veritas-data/audits"    # relative to the config file's folder
    fsync = true                    # optional; false is faster and survives only a crash of
                                    # the process, not of the machine
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path

import veritas_store as vs

__version__ = "1.0.0"

if vs.PLUGIN_API_VERSION[0] != 1:  # written against plugin API 1.x
    raise ImportError(
        "veritas-store-jsonfolder needs veritas-store plugin API 1.x, "
        f"not {'.'.join(map(str, vs.PLUGIN_API_VERSION))}"
    )


class JsonFolderAuditStore:
    """Audits as JSON files in one folder. Thread-safe.

    Across processes, ``create`` is safe (exactly one of two concurrent creates wins); an
    ``update`` racing a ``delete`` in another process may bring the audit back.
    """

    capabilities = frozenset({vs.Capability.LIST})

    def __init__(self, path: str, fsync: bool = True) -> None:
        if not isinstance(path, str) or not path.strip():
            raise ValueError("jsonfolder: path must be a non-empty folder path")
        if not isinstance(fsync, bool):
            raise TypeError(f"jsonfolder: fsync must be true or false, got {fsync!r}")
        self._folder = Path(path)
        self._folder.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._lock = threading.Lock()  # update and delete: check, then act

    def __repr__(self) -> str:
        return f"JsonFolderAuditStore(path={str(self._folder)!r})"

    # -- the AuditStore protocol --------------------------------------------------------

    def create(self, audit: vs.Audit) -> None:
        target = self._file(audit.id)
        temp = self._write_temp(audit)
        try:
            os.link(temp, target)  # atomic, and refuses to replace an existing file
        except FileExistsError:
            raise vs.AuditExists(f"audit {audit.id!r} already exists") from None
        finally:
            temp.unlink()

    def get(self, audit_id: str) -> vs.Audit | None:
        return self._read(self._file(audit_id))

    def update(self, audit: vs.Audit) -> None:
        target = self._file(audit.id)
        with self._lock:
            if not target.exists():
                raise vs.AuditNotFound(f"audit {audit.id!r} not found")
            os.replace(self._write_temp(audit), target)

    def delete(self, audit_id: str) -> bool:
        target = self._file(audit_id)
        with self._lock:
            try:
                target.unlink()
            except FileNotFoundError:
                return False
        return True

    def list(
        self,
        status: vs.AuditStatus | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> vs.AuditPage:
        # Temporary files start with "." and so never match an audit id.
        found = (self._read(p) for p in self._folder.glob("*.json") if not p.name.startswith("."))
        return vs.paginate(
            [a for a in found if a is not None], status=status, limit=limit, cursor=cursor
        )

    def close(self) -> None:
        pass  # no handles are kept open between calls

    # -- files ------------------------------------------------------------------------

    def _file(self, audit_id: str) -> Path:
        # Validated first: a bad id raises InvalidKey and never becomes a path.
        return self._folder / f"{vs.validate_audit_id(audit_id)}.json"

    def _write_temp(self, audit: vs.Audit) -> Path:
        temp = self._folder / f".{audit.id}.{secrets.token_hex(8)}.tmp"
        with open(temp, "w", encoding="utf-8") as out:
            json.dump(audit.to_dict(), out, ensure_ascii=False)
            if self._fsync:
                out.flush()
                os.fsync(out.fileno())
        return temp

    @staticmethod
    def _read(path: Path) -> vs.Audit | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:  # absent, or deleted while we listed
            return None
        return vs.Audit.from_dict(json.loads(text))


@vs.hookimpl
def register_audit_backends(register):  # type: ignore[no-untyped-def]
    register(
        "jsonfolder",
        JsonFolderAuditStore,
        description="audits as JSON files in a folder (path, fsync)",
    )
