"""Blobs on local disk, atomically and durably: a hidden temporary file in the same folder,
written and fsync'ed, renamed over the target, then the folder fsync'ed so the rename survives
a crash; folders that a delete leaves empty are pruned."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets as _secrets


def fsync_folder(folder: str) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# Temporary names: unique per process and call without a syscall per save (os.urandom is one);
# the random token drawn once keeps a stale file of a reused PID from matching, and O_EXCL
# catches whatever still collides.
_TOKEN = _secrets.token_hex(4)
_UNIQUE = itertools.count()
_ATTEMPTS = 5


def put_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``: all of it or nothing, durable when this returns."""
    folder, name = os.path.split(path)
    for attempt in range(_ATTEMPTS):
        # Starts with "." so it is never a valid key: list() skips it.
        temp = os.path.join(folder, f".{name}.{_TOKEN}{os.getpid():x}-{next(_UNIQUE):x}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except (FileNotFoundError, FileExistsError) as exc:
            if attempt == _ATTEMPTS - 1:
                raise
            if isinstance(exc, FileNotFoundError):
                # A new folder, or one a concurrent delete() pruned: made only then, so a
                # save into an existing folder costs no stat or mkdir.
                os.makedirs(folder, exist_ok=True)
            continue
        try:
            try:
                view = memoryview(data)
                while view:  # os.write may write less than asked
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        fsync_folder(folder)
        return


def prune_empty_folders(folder: str, root: str) -> None:
    """Remove the folders that deleting a blob left empty, up to (not including) the root."""
    top = root or "/"
    while folder != top and folder.startswith(root + "/"):
        try:
            os.rmdir(folder)
        except OSError:
            return  # not empty (or already gone): stop
        folder = os.path.dirname(folder)
