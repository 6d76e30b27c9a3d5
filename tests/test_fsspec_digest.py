"""The fsspec backend's sha256, computed on a helper thread beside the write
(``plugins/fsspec_digest.py``): the digest is always the blob's, whoever computes it, with many
writers at once, when the helper is busy or fails, and in a forked child."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veritas_store_plugins import fsspec_digest
from veritas_store_plugins.fsspec_blobs import FsspecBlobStore
from veritas_store_plugins.fsspec_digest import HASH_BESIDE_FROM, sha256_beside

BIG = HASH_BESIDE_FROM


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from([0, 1, BIG - 1, BIG, BIG + 1, 3 * BIG]),
    fill=st.integers(0, 255),
)
def test_the_digest_is_the_data_s_sha256_on_both_sides_of_the_threshold(
    size: int, fill: int
) -> None:
    data = bytes([fill]) * size + os.urandom(8)
    assert sha256_beside(data)() == sha(data)


def test_a_big_blob_is_hashed_by_the_helper_thread() -> None:
    seen: list[str] = []
    real = fsspec_digest.hashlib.sha256

    def recording(data: bytes) -> hashlib._Hash:
        seen.append(threading.current_thread().name)
        return real(data)

    data = os.urandom(BIG * 2)
    expected = (sha(data), sha(b"small"))
    with pytest.MonkeyPatch.context() as mp:  # hashlib itself: the test computes none inside
        mp.setattr(fsspec_digest.hashlib, "sha256", recording)
        result = sha256_beside(data)
        threading.Event().wait(0.2)  # time for the helper to claim it
        digests = (result(), sha256_beside(b"small")())
    assert digests == expected
    assert seen == ["veritas-sha256", threading.current_thread().name]


def test_the_caller_hashes_what_the_helper_has_not_started() -> None:
    """A busy helper never makes a put wait behind another put's hash."""
    job = fsspec_digest._Digest(os.urandom(BIG))  # never given to the helper
    assert job.result() == sha(job._data)
    job.compute()  # the helper coming late finds it claimed and does nothing
    assert job.result() == sha(job._data)


def test_a_failing_hash_on_the_helper_is_retried_by_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = hashlib.sha256
    calls: list[str] = []

    def fails_on_the_helper(data: bytes) -> hashlib._Hash:
        calls.append(threading.current_thread().name)
        if threading.current_thread().name == "veritas-sha256":
            raise MemoryError("no memory for the helper")
        return real(data)

    job = fsspec_digest._Digest(os.urandom(BIG))
    expected = sha(job._data)
    monkeypatch.setattr(fsspec_digest.hashlib, "sha256", fails_on_the_helper)
    helper = threading.Thread(target=job.compute, name="veritas-sha256")
    helper.start()
    helper.join()
    assert job.result() == expected
    monkeypatch.undo()
    assert calls == ["veritas-sha256", threading.current_thread().name]
    # and the helper thread that serves every put is still alive afterwards
    data = os.urandom(BIG)
    assert sha256_beside(data)() == sha(data)


def test_many_writers_at_once_each_get_their_own_blob_s_digest(tmp_path: Path) -> None:
    store = FsspecBlobStore(str(tmp_path))
    blobs = {f"a{i}/0000.png": os.urandom(BIG + i) for i in range(64)}
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        infos = dict(zip(blobs, pool.map(lambda k: store.put(k, blobs[k]), blobs), strict=True))
    for key, data in blobs.items():
        assert infos[key].sha256 == sha(data)
        assert infos[key].size == len(data)
        assert store.get(key) == data


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists only on POSIX")
def test_a_forked_child_hashes_without_the_parent_s_helper_thread() -> None:
    data = os.urandom(BIG)
    assert sha256_beside(data)() == sha(data)  # the parent's helper is running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = sha256_beside(data)() == sha(data) and sha256_beside(data[::-1])() == sha(
                data[::-1]
            )
            os.write(write, b"ok" if ok else b"wrong")
        finally:
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as answer:
            assert answer.read() == b"ok"
    finally:
        os.waitpid(pid, 0)
