"""The ``fsspec`` blob backend against real local disk, fsspec's memory filesystem and S3.

S3 is moto's server on 127.0.0.1 (``tests/s3server.py``), reached through s3fs over HTTP: no
mocks. Without moto the S3 cases are skipped, unless the environment variable ``CI`` is set.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import veritas_store as vs
from veritas_store.testing import BAD_KEYS
from veritas_store_plugins.fsspec_blobs import FsspecBlobStore, register_blob_backends

try:  # tests/ as a package or as a plain folder on sys.path
    from tests import s3server
except ImportError:  # pragma: no cover - depends on how pytest was started
    import s3server  # type: ignore[no-redef]

KINDS = ["local", "memory", "s3"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


# --- where the blobs live ---------------------------------------------------------------------


# s3_server: the session fixture in conftest.py (one moto server for the whole run)


@attrs.define
class Place:
    """One root URL on one kind of filesystem, and a way to look behind a store's back."""

    kind: str
    url: str
    options: dict[str, Any]
    read_raw: Callable[[str], bytes]  # relative path under the root -> bytes, bypassing stores
    find_raw: Callable[[], list[str]]  # every file under the root (and beyond, for local)

    def open(self, sub: str | None = None, **options: Any) -> FsspecBlobStore:
        url = f"{self.url}/{sub}" if sub else self.url
        return FsspecBlobStore(url, {**self.options, **options})


@pytest.fixture(params=KINDS)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    kind = request.param
    if kind == "local":
        root = tmp_path / "deep" / "er" / "blobs"  # not created: put() makes it
        yield Place(
            kind,
            str(root),
            {},
            lambda rel: (root / rel).read_bytes(),
            lambda: sorted(str(p) for p in tmp_path.parent.rglob("*")),
        )
    elif kind == "memory":
        fs = fsspec.filesystem("memory")
        root = f"/t{uuid.uuid4().hex}"
        yield Place(
            kind,
            f"memory://{root.lstrip('/')}",
            {},
            lambda rel: fs.cat_file(f"{root}/{rel}"),
            lambda: sorted(fs.find("/")),  # the whole (process-global) memory filesystem
        )
        if fs.exists(root):
            fs.rm(root, recursive=True)
    else:
        server: s3server.S3Server = request.getfixturevalue("s3_server")
        bucket = server.make_bucket()
        raw = server.filesystem()
        yield Place(
            kind,
            f"s3://{bucket}/prod",
            server.storage_options(),
            lambda rel: raw.cat_file(f"{bucket}/prod/{rel}"),
            lambda: sorted(raw.find(bucket)),  # the whole bucket
        )


@pytest.fixture
def store(place: Place) -> Iterator[FsspecBlobStore]:
    store = place.open()
    yield store
    store.close()


# The conformance kit runs on local disk, memory:// and S3 in test_backend_contracts.py.


# --- reading and writing ----------------------------------------------------------------------


def test_key_is_stored_at_url_slash_key(place: Place, store: FsspecBlobStore) -> None:
    info = store.put("audit-1/0000.png", PNG, "image/png")
    assert info.key == "audit-1/0000.png"
    assert info.size == len(PNG)
    assert info.sha256 == hashlib.sha256(PNG).hexdigest()
    assert info.content_type == "image/png"
    assert place.read_raw("audit-1/0000.png") == PNG
    assert store.get("audit-1/0000.png") == PNG


def test_overwrite_with_shorter_data_replaces_every_byte(
    place: Place, store: FsspecBlobStore
) -> None:
    store.put("k/v", b"long original content")
    info = store.put("k/v", b"short")
    assert (info.size, info.sha256) == (5, hashlib.sha256(b"short").hexdigest())
    assert store.get("k/v") == b"short"
    assert place.read_raw("k/v") == b"short"
    assert list(store.list()) == ["k/v"]


def test_a_folder_is_not_a_blob(store: FsspecBlobStore) -> None:
    store.put("d/x", b"inside")
    with pytest.raises(vs.BlobNotFound) as caught:
        store.get("d")
    assert isinstance(caught.value, KeyError)
    assert store.exists("d") is False
    assert store.delete("d") is False
    assert store.get("d/x") == b"inside"


def test_a_blob_is_not_a_folder(store: FsspecBlobStore) -> None:
    store.put("f", b"file")
    with pytest.raises(vs.BlobNotFound):
        store.get("f/child")
    assert store.exists("f/child") is False
    assert store.delete("f/child") is False
    assert store.get("f") == b"file"


def test_deleting_the_last_blob_of_a_folder_frees_the_name(store: FsspecBlobStore) -> None:
    store.put("a/b/c", b"nested")
    assert store.delete("a/b/c") is True
    store.put("a", b"now a blob")  # on disk, "a" must no longer be a (leftover) folder
    assert store.get("a") == b"now a blob"
    assert list(store.list()) == ["a"]


def test_fresh_store_is_empty_and_reading_creates_nothing(place: Place) -> None:
    before = place.find_raw()
    store = place.open(sub="never-written")
    assert list(store.list()) == []
    assert list(store.list("a/b")) == []
    assert store.exists("a") is False
    assert store.delete("a") is False
    with pytest.raises(vs.BlobNotFound):
        store.get("a")
    assert place.find_raw() == before


def test_bytes_like_data_is_stored_as_bytes(store: FsspecBlobStore) -> None:
    store.put("ba", bytearray(b"from a bytearray"))
    store.put("mv", memoryview(b"from a memoryview"))
    assert store.get("ba") == b"from a bytearray"
    assert store.get("mv") == b"from a memoryview"


@pytest.mark.parametrize("data", ["text is not bytes", 5, None, [1, 2]])
def test_non_bytes_data_is_a_type_error_and_writes_nothing(
    store: FsspecBlobStore, data: Any
) -> None:
    with pytest.raises(TypeError):
        store.put("k", data)
    assert store.exists("k") is False


def test_content_type_must_be_text(store: FsspecBlobStore) -> None:
    with pytest.raises(TypeError):
        store.put("k", b"x", content_type=b"image/png")  # type: ignore[arg-type]
    assert store.exists("k") is False


# --- listing ----------------------------------------------------------------------------------

# "-" < "." < "/" < "0": a walk that visits folder "a" as one unit would misplace "a/..." keys.
LIST_KEYS = ["a-b", "a.b", "a/b/c", "a/b/d/e", "a/bc", "a/bd/x", "a0", "b/x", "B"]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", sorted(LIST_KEYS)),
        ("a", ["a-b", "a.b", "a/b/c", "a/b/d/e", "a/bc", "a/bd/x", "a0"]),
        ("a/", ["a/b/c", "a/b/d/e", "a/bc", "a/bd/x"]),
        ("a/b", ["a/b/c", "a/b/d/e", "a/bc", "a/bd/x"]),
        ("a/b/", ["a/b/c", "a/b/d/e"]),
        ("a/bc", ["a/bc"]),
        ("a/b/d/e", ["a/b/d/e"]),
        ("a/b/c/", []),
        ("b", ["b/x"]),
        ("zzz", []),
        ("no/such/folder/", []),
    ],
)
def test_list_is_a_plain_prefix_in_lexicographic_order(
    store: FsspecBlobStore, prefix: str, expected: list[str]
) -> None:
    for key in reversed(LIST_KEYS):
        store.put(key, key.encode())
    listed = store.list(prefix)
    assert iter(listed) is listed  # an iterator, as the protocol says
    assert list(listed) == expected


@pytest.mark.parametrize("bad", ["../", "a//", "a/../", "a\\b", "a/b\\", "a/.."])
def test_list_rejects_bad_prefixes(store: FsspecBlobStore, bad: str) -> None:
    with pytest.raises(vs.InvalidKey):
        store.list(bad)


def _without_folder_names(keys: list[str]) -> list[str]:
    """Local disk cannot hold both "a" and "a/b": keep "a/b"."""
    return [key for key in keys if not any(other.startswith(key + "/") for other in keys)]


_segments = st.sampled_from(["a", "b", "a-", "a.b", "ab", "A", "0", "a0"])
_keys = st.lists(_segments, min_size=1, max_size=3).map("/".join)
_prefixes = st.one_of(
    _keys,
    _keys.map(lambda k: k + "/"),
    _keys.map(lambda k: k[:-1] if len(k) > 1 and k[-2] != "/" else k),
    st.just(""),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(_keys, min_size=1, max_size=6, unique=True).map(_without_folder_names),
    prefix=_prefixes,
)
def test_list_matches_a_sorted_filter(place: Place, keys: list[str], prefix: str) -> None:
    store = place.open(sub=f"h{uuid.uuid4().hex[:12]}")  # a fresh root for each example
    for key in keys:
        store.put(key, b"x")
    assert list(store.list(prefix)) == sorted(k for k in keys if k.startswith(prefix))


def test_list_skips_temporary_and_foreign_files(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FsspecBlobStore(str(root))
    store.put("ok/1", b"1")
    (root / ".ok.1.cafe.tmp").write_bytes(b"half")
    (root / "ok" / ".partial").write_bytes(b"half")
    (root / "not a key").write_bytes(b"?")
    assert list(store.list()) == ["ok/1"]
    assert list(store.list("ok/")) == ["ok/1"]


def test_another_process_writes_are_seen(place: Place) -> None:
    """A second store (own filesystem instance and caches) stands in for another process."""
    reader = place.open()
    assert list(reader.list()) == []  # fills fsspec's listing cache, where it keeps one
    assert reader.exists("shared/k") is False
    writer = place.open()
    writer.put("shared/k", b"from elsewhere")
    assert reader.get("shared/k") == b"from elsewhere"  # not judged by a stale listing
    assert reader.exists("shared/k") is True
    assert list(reader.list()) == ["shared/k"]
    assert list(reader.list("shared/")) == ["shared/k"]
    writer.put("shared/k2", b"second")
    assert reader.exists("shared/k2") is True
    assert writer.delete("shared/k") is True
    assert reader.exists("shared/k") is False
    with pytest.raises(vs.BlobNotFound):
        reader.get("shared/k")
    assert list(reader.list()) == ["shared/k2"]
    assert reader.delete("shared/k") is False


# --- URLs -------------------------------------------------------------------------------------


def test_url_reads_the_blob(place: Place, store: FsspecBlobStore) -> None:
    store.put("u/shot.png", PNG, "image/png")
    if place.kind == "memory":
        with pytest.raises(NotImplementedError):
            store.url("u/shot.png")
        return
    url = store.url("u/shot.png", expires=120)
    assert url.startswith({"local": "file://", "s3": "http://127.0.0.1:"}[place.kind])
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == PNG
        if place.kind == "s3":
            assert response.headers["Content-Type"] == "image/png"


def test_url_validates_key_and_expiry(store: FsspecBlobStore) -> None:
    with pytest.raises(vs.InvalidKey):
        store.url("../../etc/passwd")
    for expires in (0, -5, 1.5, True):
        with pytest.raises(ValueError):
            store.url("k", expires=expires)  # type: ignore[arg-type]


# --- keys are validated before any filesystem call --------------------------------------------


@pytest.mark.parametrize("bad", [*BAD_KEYS, "a/../../../escape", "x" * 1025, "a\\..\\b"])
def test_bad_keys_raise_and_nothing_is_written_anywhere(place: Place, bad: str) -> None:
    store = place.open()
    store.put("keep", b"kept")
    before = place.find_raw()
    for call in (
        lambda: store.put(bad, b"evil"),
        lambda: store.put(bad, b"evil", "text/plain"),
        lambda: store.get(bad),
        lambda: store.exists(bad),
        lambda: store.delete(bad),
        lambda: store.url(bad),
    ):
        with pytest.raises(vs.InvalidKey):
            call()
    assert place.find_raw() == before  # for local: the whole tmp folder tree and its parent
    assert list(store.list()) == ["keep"]
    assert store.get("keep") == b"kept"


@pytest.mark.parametrize("bad", [5, b"bytes-key", None])
def test_non_text_keys_are_invalid(store: FsspecBlobStore, bad: Any) -> None:
    with pytest.raises(vs.InvalidKey):
        store.put(bad, b"x")
    with pytest.raises(vs.InvalidKey):
        store.get(bad)


# --- atomic writes and threads ----------------------------------------------------------------


def test_a_reader_never_sees_a_partial_blob(place: Place, store: FsspecBlobStore) -> None:
    size = 1024 * 1024
    versions = [bytes([i]) * (size - i) + bytes([255 - i]) * i for i in range(1, 5)]
    allowed = {hashlib.sha256(v).hexdigest() for v in versions}
    store.put("big/blob", versions[0])
    done = threading.Event()
    seen: list[str] = []
    bad: list[str] = []

    def read() -> None:
        while not done.is_set():
            try:
                digest = hashlib.sha256(store.get("big/blob")).hexdigest()
            except Exception as exc:  # a vanished blob is a failure too
                bad.append(repr(exc))
                continue
            (seen if digest in allowed else bad).append(digest)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + (1.5 if place.kind != "s3" else 3.0)
    writes = 0
    try:
        while time.monotonic() < deadline or writes < 8:
            store.put("big/blob", versions[writes % len(versions)])
            writes += 1
    finally:
        done.set()
        reader.join()
    assert bad == []
    assert len(seen) >= 5
    if place.kind == "local":
        root = Path(place.url)
        assert sorted(p.name for p in root.rglob("*")) == ["big", "blob"]  # no temp file left


def test_local_files_get_ordinary_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    FsspecBlobStore(str(tmp_path)).put("m/file", b"x")
    mode = (tmp_path / "m" / "file").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask  # like open(): a web server can serve the file:// URLs


def test_many_threads_share_one_store(store: FsspecBlobStore) -> None:
    keys = [f"t{w}/{i}" for w in range(4) for i in range(12)]
    errors: list[BaseException] = []

    def work(mine: list[str]) -> None:
        try:
            for key in mine:
                store.put(key, key.encode())
                assert store.exists(key)
                assert store.get(key) == key.encode()
                assert key in list(store.list(key.split("/")[0] + "/"))
            for key in mine[::2]:
                assert store.delete(key) is True
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(keys[w::4],)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    remaining = sorted(k for w in range(4) for k in keys[w::4][1::2])
    assert list(store.list()) == remaining


# --- local disk specifics ---------------------------------------------------------------------


def test_file_url_and_path_objects_name_the_same_folder(tmp_path: Path) -> None:
    FsspecBlobStore(tmp_path.as_uri()).put("via/uri", b"1")
    FsspecBlobStore(tmp_path).put("via/path", b"2")  # type: ignore[arg-type]
    assert (tmp_path / "via" / "uri").read_bytes() == b"1"
    assert (tmp_path / "via" / "path").read_bytes() == b"2"
    assert list(FsspecBlobStore(str(tmp_path)).list()) == ["via/path", "via/uri"]


# --- S3 specifics -----------------------------------------------------------------------------


def test_content_type_is_stored_with_the_s3_object(s3_server: s3server.S3Server) -> None:
    bucket = s3_server.make_bucket()
    store = FsspecBlobStore(f"s3://{bucket}/shots", s3_server.storage_options())
    store.put("a1/0000.png", PNG, "image/png")
    store.put("a1/0001.jpg", b"\xff\xd8\xff", "image/jpeg")
    raw = s3_server.filesystem()
    assert raw.info(f"{bucket}/shots/a1/0000.png")["ContentType"] == "image/png"
    assert raw.info(f"{bucket}/shots/a1/0001.jpg")["ContentType"] == "image/jpeg"


def test_missing_bucket_reads_as_empty(s3_server: s3server.S3Server) -> None:
    store = FsspecBlobStore(f"s3://no-such-{uuid.uuid4().hex[:12]}/p", s3_server.storage_options())
    assert list(store.list()) == []
    assert store.exists("a") is False
    with pytest.raises(vs.BlobNotFound):
        store.get("a")


def test_empty_storage_options_are_dropped(s3_server: s3server.S3Server) -> None:
    # What a config with endpoint_url = "${S3_ENDPOINT_URL:-}" produces when the variable is
    # unset, while the real endpoint comes from client_kwargs.
    options = s3_server.storage_options(endpoint_url="")
    options["client_kwargs"] = {**options["client_kwargs"], "region_name": ""}
    with pytest.raises((TypeError, ValueError)):  # as they are, s3fs cannot use them
        s3_server.filesystem().__class__(**options).ls("")
    bucket = s3_server.make_bucket()
    store = FsspecBlobStore(f"s3://{bucket}/p", options)
    store.put("k", b"reached moto")
    assert store.get("k") == b"reached moto"
    assert "endpoint_url" not in store.storage_options
    assert store.storage_options["client_kwargs"] == {"endpoint_url": s3_server.endpoint_url}


# --- configuration errors and secrets ---------------------------------------------------------


def test_secrets_never_appear_in_repr() -> None:
    store = FsspecBlobStore(
        "s3://bucket/prefix",
        {
            "key": "AKIA-NOT-SHOWN",
            "secret": "secret-not-shown",
            "token": "token-not-shown",
            "client_kwargs": {
                "endpoint_url": "http://127.0.0.1:1",
                "aws_session_token": "session-not-shown",
            },
        },
    )
    assert "s3://bucket/prefix" in repr(store)
    for text in (repr(store), str(store), repr(store.storage_options)):
        assert "NOT-SHOWN" not in text.upper()
        assert "***" in text
        assert "http://127.0.0.1:1" in text


def test_url_passwords_and_query_tokens_are_redacted() -> None:
    store = FsspecBlobStore("memory://user:pw-not-shown@host/x?sig=tok-not-shown")
    assert "not-shown" not in repr(store)
    assert "user" in repr(store)


@pytest.mark.parametrize(
    ("url", "options", "error", "mentions"),
    [
        (5, None, TypeError, "url"),
        ("", None, ValueError, "url"),
        ("   ", None, ValueError, "url"),
        ("memory://x", ["not", "a", "dict"], TypeError, "storage_options"),
        ("memory://x", {1: "numeric key"}, TypeError, "storage_options"),
        ("nope-protocol://x", {"password": "pw-not-shown"}, ValueError, "nope-protocol"),
    ],
)
def test_bad_configuration_is_a_clear_error(
    url: Any, options: Any, error: type[Exception], mentions: str
) -> None:
    with pytest.raises(error) as caught:
        FsspecBlobStore(url, options)
    assert mentions in str(caught.value)
    assert "pw-not-shown" not in str(caught.value)


# --- the plugin -------------------------------------------------------------------------------


def test_registers_the_fsspec_type() -> None:
    registered: list[tuple[str, Any, str]] = []
    register_blob_backends(
        register=lambda name, factory, description="": registered.append(
            (name, factory, description)
        )
    )
    assert [(name, factory) for name, factory, _ in registered] == [("fsspec", FsspecBlobStore)]
    assert registered[0][2]


def test_open_stores_builds_it_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # anything the framework puts in the current folder lands here
    config = {
        "audits": {"backends": {"memory": {"type": "memory"}}},
        "blobs": {
            "backends": {
                "local": {
                    "type": "fsspec",
                    "url": str(tmp_path / "blobs"),
                    "storage_options": {"auto_mkdir": ""},
                }
            }
        },
    }
    with vs.open_stores(config) as stores:
        stores.blobs.put("cfg/1.png", PNG, "image/png")
        assert stores.blobs.get("cfg/1.png") == PNG
    assert (tmp_path / "blobs" / "cfg" / "1.png").read_bytes() == PNG


# --- the local put's digest --------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 64 * 1024 - 1, 64 * 1024, 300_000])
def test_local_put_reports_the_sha256_of_what_it_wrote(tmp_path: Path, size: int) -> None:
    store = FsspecBlobStore(str(tmp_path / "blobs"))
    data = os.urandom(size)
    try:
        info = store.put("a/b.png", data, "image/png")
        assert info == vs.BlobInfo("a/b.png", size, hashlib.sha256(data).hexdigest(), "image/png")
        assert (tmp_path / "blobs" / "a" / "b.png").read_bytes() == data
    finally:
        store.close()
    # a put after close() still works on local disk (nothing to reopen)
    info = store.put("a/c.png", data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    store.close()


def test_concurrent_large_local_puts_each_get_their_own_digest(tmp_path: Path) -> None:
    store = FsspecBlobStore(str(tmp_path / "blobs"))
    blobs = {f"k{i}/x.bin": os.urandom(100_000 + i) for i in range(12)}
    infos: dict[str, vs.BlobInfo] = {}

    def put(key: str) -> None:
        infos[key] = store.put(key, blobs[key])

    threads = [threading.Thread(target=put, args=(key,)) for key in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert {k: i.sha256 for k, i in infos.items()} == {
        k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()
    }


def test_a_failed_local_put_leaves_no_file_and_raises(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "a").write_bytes(b"a file where a folder should be")
    store = FsspecBlobStore(str(tmp_path / "blobs"))
    with pytest.raises(OSError):
        store.put("a/b.png", os.urandom(100_000))
    store.close()
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == ["a"]


def test_read_options_the_filesystem_does_not_take_are_left_out() -> None:
    from veritas_store_plugins.fsspec_options import accepted as _accepted

    class Old(fsspec.AbstractFileSystem):
        async def _cat_file(self, path: str, version_id: Any = None) -> bytes:
            return b""

    class New(fsspec.AbstractFileSystem):
        async def _cat_file(self, path: str, max_concurrency: int = 4) -> bytes:
            return b""

    class Open(fsspec.AbstractFileSystem):
        def cat_file(self, path: str, **kwargs: Any) -> bytes:
            return b""

    wanted = {"max_concurrency": 1}
    assert _accepted(Old(), wanted) == {}
    assert _accepted(New(), wanted) == wanted
    assert _accepted(Open(), wanted) == wanted
    assert _accepted(Old(), {}) == {}


def test_a_stale_temporary_file_with_the_same_name_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary names come from a counter: one left behind by an earlier process with the same
    PID must not be overwritten or make the put fail (O_EXCL, then the next name)."""
    import itertools
    import os

    from veritas_store_plugins import fsspec_local

    monkeypatch.setattr(fsspec_local, "_UNIQUE", itertools.count())
    folder = tmp_path / "a"
    folder.mkdir()
    stale = folder / f".b.{fsspec_local._TOKEN}{os.getpid():x}-0.tmp"
    stale.write_bytes(b"someone else's")
    store = FsspecBlobStore(str(tmp_path))
    info = store.put("a/b", b"new")
    assert store.get("a/b") == b"new" and info.size == 3
    assert stale.read_bytes() == b"someone else's"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["b", stale.name])
