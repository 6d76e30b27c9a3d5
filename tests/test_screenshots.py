"""ScreenshotStorage: screenshots as blobs at deterministic keys, references on the audit."""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from faulty import FaultyPlugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from observers import Recorder

import veritas_store as vs
from veritas_store.demo import make_png

# -- tiny real images, built by hand -------------------------------------------------------------

PNG = make_png(3, 2, (200, 30, 60))
PNG_OTHER = make_png(5, 4, (0, 128, 255))


def _jpeg_segment(marker: int, body: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body


# A 1x1 grey baseline JPEG: one quantisation table, a DC and an AC Huffman table with a single
# one-bit code each, and one block coded as "DC difference 0, end of block".
JPEG = (
    b"\xff\xd8"
    + _jpeg_segment(0xDB, b"\x00" + b"\x01" * 64)  # DQT
    + _jpeg_segment(0xC0, b"\x08\x00\x01\x00\x01\x01\x01\x11\x00")  # SOF0: 1x1, 1 component
    + _jpeg_segment(0xC4, b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00")  # DHT DC: "0" -> 0
    + _jpeg_segment(0xC4, b"\x10" + b"\x01" + b"\x00" * 15 + b"\x00")  # DHT AC: "0" -> EOB
    + _jpeg_segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")  # SOS
    + b"\x3f"  # bits 00, padded with ones
    + b"\xff\xd9"
)
# A 1x1 transparent GIF89a.
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
# A 1x1 lossless WebP (RIFF / WEBP / VP8L).
WEBP = bytes.fromhex("524946461a000000574542505650384c0d0000002f00000010071011118888fe0700")

IMAGES = {
    "png": (PNG, "png", "image/png"),
    "jpeg": (JPEG, "jpg", "image/jpeg"),
    "webp": (WEBP, "webp", "image/webp"),
    "gif": (GIF, "gif", "image/gif"),
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


ENCODINGS: dict[str, Callable[[bytes], Any]] = {
    "raw bytes": lambda d: d,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "base64 str": b64,
    "data url": lambda d: "data:image/png;base64," + b64(d),
    "data url other mime": lambda d: "data:image/jpeg;base64," + b64(d),
    "base64 with newlines": lambda d: base64.encodebytes(d).decode(),  # 76-column lines
    "data url with newlines": lambda d: (
        "  data:image/png;base64,\n"
        + "\r\n".join(b64(d)[i : i + 20] for i in range(0, len(b64(d)), 20))
        + "\n"
    ),
}


# -- fixtures --------------------------------------------------------------------------------------


def _config(tmp_path: Path, blobs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "audits": {
            "backends": {
                "db": {"type": "sql", "url": f"sqlite:///{tmp_path}/a.db"},
                "mem": {"type": "memory"},
            }
        },
        "blobs": {
            "backends": blobs
            or {
                "disk": {"type": "fsspec", "url": str(tmp_path / "blobs")},
                "bmem": {"type": "memory"},
            }
        },
        "journal": str(tmp_path / "journal.db"),
    }


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[vs.Stores]:
    monkeypatch.chdir(tmp_path)
    with vs.open_stores(_config(tmp_path), plugins=[FaultyPlugin()]) as s:
        yield s


@pytest.fixture
def audit(stores: vs.Stores) -> vs.Audit:
    created = vs.utcnow() - timedelta(hours=1)
    record = vs.Audit(id="shot-1", url="https://shop.example", created_at=created)
    stores.audits.create(record)
    return record


def stored_everywhere(stores: vs.Stores, audit_id: str) -> vs.Audit:
    """The audit, checked to be the same in every audit backend."""
    copies = [store.get(audit_id) for store in stores.audits.backends.values()]
    assert copies[0] is not None
    assert all(c == copies[0] for c in copies), copies
    return copies[0]


def blob_keys(stores: vs.Stores, prefix: str = "") -> dict[str, list[str]]:
    return {name: list(store.list(prefix)) for name, store in stores.blobs.backends.items()}


def assert_nothing_written(stores: vs.Stores, before: vs.Audit | None, tmp_path: Path) -> None:
    audit_id = before.id if before is not None else "shot-1"
    for name, store in stores.audits.backends.items():
        assert store.get(audit_id) == before, name
    assert blob_keys(stores) == {"disk": [], "bmem": []}
    blob_root = tmp_path / "blobs"
    assert not blob_root.exists() or [p for p in blob_root.rglob("*") if p.is_file()] == []


# -- saving ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("fmt", list(IMAGES))
def test_save_accepts_every_format_and_encoding(
    stores: vs.Stores, audit: vs.Audit, tmp_path: Path, fmt: str, encoding: str
) -> None:
    raw, ext, content_type = IMAGES[fmt]
    shot = stores.screenshots.save("shot-1", 3, "landing page", ENCODINGS[encoding](raw))

    key = f"shot-1/0003.{ext}"
    assert shot == vs.Screenshot(
        index=3,
        label="landing page",
        blob_key=key,
        size_bytes=len(raw),
        content_type=content_type,
        sha256=hashlib.sha256(raw).hexdigest(),
    )
    assert stored_everywhere(stores, "shot-1").screenshots == (shot,)
    for name, store in stores.blobs.backends.items():
        assert store.get(key) == raw, name
    assert (tmp_path / "blobs" / "shot-1" / f"0003.{ext}").read_bytes() == raw
    assert stores.screenshots.load("shot-1", 3) == raw


def test_key_is_deterministic_and_zero_padded(stores: vs.Stores, audit: vs.Audit) -> None:
    for index in (0, 7, 42, 9999):
        shot = stores.screenshots.save("shot-1", index, f"shot {index}", PNG)
        assert shot.blob_key == f"shot-1/{index:04d}.png"
    assert blob_keys(stores, "shot-1/")["disk"] == [
        "shot-1/0000.png",
        "shot-1/0007.png",
        "shot-1/0042.png",
        "shot-1/9999.png",
    ]


def test_resave_of_the_same_index_overwrites(stores: vs.Stores, audit: vs.Audit) -> None:
    stores.screenshots.save("shot-1", 1, "first try", PNG)
    shot = stores.screenshots.save("shot-1", 1, "retry", b64(PNG_OTHER))
    assert blob_keys(stores) == {"disk": ["shot-1/0001.png"], "bmem": ["shot-1/0001.png"]}
    assert stored_everywhere(stores, "shot-1").screenshots == (shot,)
    assert shot.label == "retry"
    assert shot.sha256 == hashlib.sha256(PNG_OTHER).hexdigest()
    assert stores.screenshots.load("shot-1", 1) == PNG_OTHER


def test_resave_in_another_format_removes_the_old_blob(
    stores: vs.Stores, audit: vs.Audit, tmp_path: Path
) -> None:
    stores.screenshots.save("shot-1", 1, "png first", PNG)
    stores.screenshots.save("shot-1", 2, "neighbour", GIF)
    shot = stores.screenshots.save("shot-1", 1, "now a jpeg", JPEG)
    assert shot.blob_key == "shot-1/0001.jpg"
    expected = ["shot-1/0001.jpg", "shot-1/0002.gif"]
    assert blob_keys(stores) == {"disk": expected, "bmem": expected}
    assert not (tmp_path / "blobs" / "shot-1" / "0001.png").exists()
    screenshots = stored_everywhere(stores, "shot-1").screenshots
    assert [(s.index, s.blob_key, s.content_type) for s in screenshots] == [
        (1, "shot-1/0001.jpg", "image/jpeg"),
        (2, "shot-1/0002.gif", "image/gif"),
    ]
    assert stores.screenshots.load("shot-1", 1) == JPEG

    stores.screenshots.save("shot-1", 1, "and webp", b64(WEBP))
    assert blob_keys(stores)["disk"] == ["shot-1/0001.webp", "shot-1/0002.gif"]
    assert blob_keys(stores)["bmem"] == ["shot-1/0001.webp", "shot-1/0002.gif"]


def test_screenshots_are_kept_sorted_by_index(stores: vs.Stores, audit: vs.Audit) -> None:
    for index in (5, 0, 3, 9, 1):
        stores.screenshots.save("shot-1", index, f"shot {index}", PNG)
    stores.screenshots.save("shot-1", 3, "replaced", GIF)
    screenshots = stored_everywhere(stores, "shot-1").screenshots
    assert [s.index for s in screenshots] == [0, 1, 3, 5, 9]
    assert screenshots[2].label == "replaced"
    assert [s.label for s in screenshots if s.index != 3] == [
        "shot 0",
        "shot 1",
        "shot 5",
        "shot 9",
    ]


def test_save_advances_updated_at_and_keeps_the_rest(stores: vs.Stores, audit: vs.Audit) -> None:
    full = attrs.evolve(
        audit,
        status=vs.AuditStatus.RUNNING,
        trust_score=0.5,
        narrative="keep me",
        signal_scores={"visual": 0.3},
    )
    stores.audits.update(full)
    stores.screenshots.save("shot-1", 0, "a", PNG)
    first = stored_everywhere(stores, "shot-1")
    assert first.updated_at > full.updated_at
    stores.screenshots.save("shot-1", 1, "b", PNG)
    second = stored_everywhere(stores, "shot-1")
    assert second.updated_at > first.updated_at
    assert attrs.evolve(second, screenshots=(), updated_at=full.updated_at) == full


def test_save_to_a_missing_audit_raises_and_writes_no_blob(
    stores: vs.Stores, tmp_path: Path
) -> None:
    with pytest.raises(vs.AuditNotFound):
        stores.screenshots.save("shot-1", 0, "orphan", PNG)
    assert_nothing_written(stores, None, tmp_path)


def test_a_failing_blob_write_leaves_the_audit_unchanged(tmp_path: Path) -> None:
    blobs = {
        "disk": {"type": "fsspec", "url": str(tmp_path / "blobs")},
        "bad": {"type": "faulty", "inner": "memory", "fail_on": ["put"]},
    }
    with vs.open_stores(_config(tmp_path, blobs), plugins=[FaultyPlugin()]) as stores:
        before = vs.Audit(id="shot-1", url="https://x.example")
        stores.audits.create(before)
        with pytest.raises(vs.WriteError):
            stores.screenshots.save("shot-1", 0, "a", PNG)
        assert stored_everywhere(stores, "shot-1") == before


# -- rejected input --------------------------------------------------------------------------------

INVALID_DATA = {
    "text bytes": b"definitely not an image",
    "empty bytes": b"",
    "empty str": "",
    "whitespace str": "  \n ",
    "base64 of text": b64(b"hello, world"),
    "not base64": "this is not base64!",
    "odd base64": "abc",
    "urlsafe base64 chars": b64(PNG).replace("+", "-").replace("/", "_") + "-_",
    "data url with junk": "data:image/png;base64,@@@@",
    "data url of text": "data:image/png;base64," + b64(b"<svg></svg>"),
    "png as base64 bytes": b64(PNG).encode(),  # bytes are always raw
    "raw png as str": PNG.decode("latin-1"),  # str is always base64
    "png signature only": b"\x89PNG\r\n\x1a\n",
    "jpeg magic only": b"\xff\xd8\xff",
    "gif header only": b"GIF89a",
    "riff without webp": b"RIFF\x1a\x00\x00\x00WAVEfmt ",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
    "non-ascii str": "données",
    "int": 12345,
    "none": None,
    "list": [1, 2, 3],
}


@pytest.mark.parametrize("data", list(INVALID_DATA.values()), ids=list(INVALID_DATA))
def test_invalid_image_data_raises_and_writes_nothing(
    stores: vs.Stores, audit: vs.Audit, tmp_path: Path, data: Any
) -> None:
    with pytest.raises(vs.InvalidImage):
        stores.screenshots.save("shot-1", 0, "bad", data)
    assert_nothing_written(stores, audit, tmp_path)


def test_invalid_image_is_a_value_error(stores: vs.Stores, audit: vs.Audit) -> None:
    with pytest.raises(ValueError):
        stores.screenshots.save("shot-1", 0, "bad", b"nope")


@pytest.mark.parametrize("index", [-1, 10000, True, False, "1", 1.0, None])
def test_bad_index_raises_invalid_key_and_writes_nothing(
    stores: vs.Stores, audit: vs.Audit, tmp_path: Path, index: Any
) -> None:
    with pytest.raises(vs.InvalidKey):
        stores.screenshots.save("shot-1", index, "bad index", PNG)
    assert_nothing_written(stores, audit, tmp_path)
    with pytest.raises(vs.InvalidKey):
        stores.screenshots.load("shot-1", index)


# -- loading ---------------------------------------------------------------------------------------


def test_load_returns_the_bytes(stores: vs.Stores, audit: vs.Audit) -> None:
    for index, (raw, _, _) in enumerate(IMAGES.values()):
        stores.screenshots.save("shot-1", index, "x", b64(raw))
    for index, (raw, _, _) in enumerate(IMAGES.values()):
        assert stores.screenshots.load("shot-1", index) == raw


def test_load_of_a_missing_index_or_audit(stores: vs.Stores, audit: vs.Audit) -> None:
    stores.screenshots.save("shot-1", 0, "x", PNG)
    with pytest.raises(vs.BlobNotFound):
        stores.screenshots.load("shot-1", 1)
    with pytest.raises(vs.AuditNotFound):
        stores.screenshots.load("no-such-audit", 0)


def test_load_skips_a_corrupt_copy_and_returns_the_intact_one(
    stores: vs.Stores, audit: vs.Audit, tmp_path: Path
) -> None:
    shot = stores.screenshots.save("shot-1", 0, "x", PNG)
    assert list(stores.blobs.backends) == ["disk", "bmem"]
    stores.blobs.backends["disk"].put(shot.blob_key, PNG_OTHER)  # bit rot in the first copy
    assert (tmp_path / "blobs" / shot.blob_key).read_bytes() == PNG_OTHER
    assert stores.screenshots.load("shot-1", 0) == PNG

    # a copy missing from the first backend falls through as well
    stores.blobs.backends["disk"].delete(shot.blob_key)
    assert stores.screenshots.load("shot-1", 0) == PNG


def test_a_corrupt_copy_is_reported_as_a_failed_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    recorder = Recorder()
    with vs.open_stores(_config(tmp_path), plugins=[FaultyPlugin(), recorder]) as stores:
        stores.audits.create(vs.Audit(id="shot-1", url="https://shop.example"))
        shot = stores.screenshots.save("shot-1", 0, "x", PNG)
        stores.blobs.backends["disk"].put(shot.blob_key, PNG_OTHER)
        assert stores.screenshots.load("shot-1", 0) == PNG
        (event,) = recorder.calls["backend_error"]
        assert (event["backend"], event["operation"], event["key"]) == (
            "disk",
            "get",
            shot.blob_key,
        )
        assert isinstance(event["error"], vs.ChecksumMismatch)
        assert stores.blobs.backends["disk"].get(shot.blob_key) == PNG_OTHER  # left as it was


def test_read_repair_replaces_a_corrupt_or_missing_copy_with_the_intact_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path)
    cfg["blobs"]["read_repair"] = True
    with vs.open_stores(cfg) as stores:
        stores.audits.create(vs.Audit(id="shot-1", url="https://shop.example"))
        shot = stores.screenshots.save("shot-1", 0, "x", PNG)
        disk = stores.blobs.backends["disk"]
        disk.put(shot.blob_key, PNG_OTHER)
        assert stores.screenshots.load("shot-1", 0) == PNG
        assert disk.get(shot.blob_key) == PNG  # healed from the memory copy
        disk.delete(shot.blob_key)
        assert stores.screenshots.load("shot-1", 0) == PNG
        assert disk.get(shot.blob_key) == PNG


def test_verified_reads_follow_the_migration_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path)
    cfg["blobs"]["migration"] = {"from": "disk", "to": "bmem", "stage": "live"}
    with vs.open_stores(cfg, plugins=[FaultyPlugin()]) as stores:
        stores.audits.create(vs.Audit(id="shot-1", url="https://shop.example"))
        shot = stores.screenshots.save("shot-1", 0, "x", PNG)
        stores.blobs.backends["bmem"].put(shot.blob_key, PNG[:-1])  # live reads 'to' first
        assert stores.screenshots.load("shot-1", 0) == PNG  # ... and falls back to 'from'
        stores.blobs.backends["disk"].put(shot.blob_key, PNG_OTHER)
        with pytest.raises(vs.BackendUnavailable) as caught:
            stores.screenshots.load("shot-1", 0)
        assert set(caught.value.errors) == {"bmem", "disk"}


def test_load_with_every_copy_corrupt_is_backend_unavailable(
    stores: vs.Stores, audit: vs.Audit
) -> None:
    shot = stores.screenshots.save("shot-1", 0, "x", PNG)
    stores.blobs.backends["disk"].put(shot.blob_key, PNG_OTHER)
    stores.blobs.backends["bmem"].put(shot.blob_key, PNG[:-1])
    with pytest.raises(vs.BackendUnavailable):
        stores.screenshots.load("shot-1", 0)


def test_load_with_every_copy_gone_is_blob_not_found(stores: vs.Stores, audit: vs.Audit) -> None:
    shot = stores.screenshots.save("shot-1", 0, "x", PNG)
    for store in stores.blobs.backends.values():
        store.delete(shot.blob_key)
    with pytest.raises(vs.BlobNotFound):
        stores.screenshots.load("shot-1", 0)


# -- concurrency -----------------------------------------------------------------------------------


def test_concurrent_saves_to_one_audit_lose_no_reference(
    stores: vs.Stores, audit: vs.Audit
) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(5):
                stores.screenshots.save("shot-1", t * 10 + i, f"{t}/{i}", PNG)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    indexes = [s.index for s in stored_everywhere(stores, "shot-1").screenshots]
    assert indexes == sorted(t * 10 + i for t in range(threads) for i in range(5))


# -- property: random data is rejected cleanly or round-trips --------------------------------------

MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x00\x00\x00WEBPVP8",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(MAGIC), tail=st.binary(max_size=64), as_text=st.booleans())
def test_random_bytes_are_rejected_or_round_trip(prefix: bytes, tail: bytes, as_text: bool) -> None:
    data = prefix + tail
    cfg = {
        "audits": {"backends": {"mem": {"type": "memory"}}},
        "blobs": {"backends": {"a": {"type": "memory"}, "b": {"type": "memory"}}},
        "journal": False,  # no tmp_path here (hypothesis): keep the current folder clean
    }
    with vs.open_stores(cfg) as stores:
        before = vs.Audit(id="prop", url="https://x.example")
        stores.audits.create(before)
        payload: bytes | str = b64(data) if as_text else data
        try:
            shot = stores.screenshots.save("prop", 7, "random", payload)
        except vs.InvalidImage:
            assert stores.audits.get("prop") == before
            assert blob_keys(stores) == {"a": [], "b": []}
            return
        assert shot.size_bytes == len(data)
        assert shot.sha256 == hashlib.sha256(data).hexdigest()
        assert stores.screenshots.load("prop", 7) == data
        assert blob_keys(stores) == {"a": [shot.blob_key], "b": [shot.blob_key]}
        assert stores.audits.get("prop").screenshots == (shot,)
