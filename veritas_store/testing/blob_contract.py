"""The blob store contract: what every ``BlobStore`` must do."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import veritas_store as vs

from .strategies import blob_keys
from .support import (
    BAD_KEYS,
    PNG,
    assert_raises,
    check_declaration,
    hypothesis_settings,
    in_threads,
    lacks,
    needs,
    reopener,
    unique_id,
)


class BlobStoreContract:
    """Behaviour every ``BlobStore`` must have. Provide a ``blob_store`` fixture."""

    pytestmark = pytest.mark.veritas_contract

    def test_capabilities_are_a_frozenset_of_str(self, blob_store: Any) -> None:
        check_declaration(blob_store)

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

    @hypothesis_settings
    @given(key=blob_keys(), data=st.binary(max_size=5000))
    def test_generated_blobs_round_trip(self, blob_store: Any, key: str, data: bytes) -> None:
        key = f"{unique_id('h')}/{key}"
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
            assert_raises(TypeError, blob_store.put, "not-bytes", bad)
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
            assert_raises(vs.InvalidKey, blob_store.put, bad, b"evil")
            assert_raises(vs.InvalidKey, blob_store.get, bad)
            assert_raises(vs.InvalidKey, blob_store.exists, bad)
            assert_raises(vs.InvalidKey, blob_store.delete, bad)
            if urls:
                assert_raises(vs.InvalidKey, blob_store.url, bad)
        if vs.Capability.LIST in vs.capabilities_of(blob_store):
            assert list(blob_store.list()) == []

    # -- listing

    def test_list_is_a_sorted_plain_prefix(self, blob_store: Any) -> None:
        needs(blob_store, vs.Capability.LIST)
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
        needs(blob_store, vs.Capability.LIST)
        for bad in ["/abs", "../", "a/../", "a//", "a\\b", ".hidden", 5, None]:
            assert_raises(vs.InvalidKey, lambda p: list(blob_store.list(p)), bad)

    def test_list_without_the_capability_raises_not_implemented(self, blob_store: Any) -> None:
        lacks(blob_store, vs.Capability.LIST)
        with pytest.raises(NotImplementedError):
            list(blob_store.list())

    # -- URLs

    def test_url_reads_the_blob(self, blob_store: Any) -> None:
        needs(blob_store, vs.Capability.URLS)
        blob_store.put("u/1.png", PNG, "image/png")
        url = blob_store.url("u/1.png", expires=60)
        assert isinstance(url, str) and "u/1.png" in url
        if url.split(":", 1)[0] in ("file", "http", "https"):
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
                assert response.read() == PNG

    def test_url_bad_expires_is_a_value_error(self, blob_store: Any) -> None:
        needs(blob_store, vs.Capability.URLS)
        blob_store.put("u/2.png", PNG)
        for expires in [0, -5, True, 1.5, "60"]:
            assert_raises(ValueError, lambda e: blob_store.url("u/2.png", expires=e), expires)

    def test_url_without_the_capability_raises_not_implemented(self, blob_store: Any) -> None:
        lacks(blob_store, vs.Capability.URLS)
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

        in_threads(work, 6)
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

        in_threads(work, 3)
        assert blob_store.get("atomic") in versions

    # -- close

    def test_close_twice_is_harmless(self, blob_store: Any) -> None:
        blob_store.put("c", b"x")
        blob_store.close()
        blob_store.close()

    def test_data_survives_close_and_reopen(
        self, blob_store: Any, request: pytest.FixtureRequest
    ) -> None:
        reopen = reopener(request, "reopen_blob_store")
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
        needs(blob_store, vs.Capability.NATIVE_ASYNC)
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
