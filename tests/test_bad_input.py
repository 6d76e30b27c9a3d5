"""A bad-input campaign: generated ids, keys, configs and screenshot payloads, through the public
API and real backends (memory, a SQLite file, local disk through fsspec).

Each input is either accepted and round-trips, or rejected with a typed veritas-store error and
nothing written: no record, no blob, no file or folder anywhere under the test's folder (which
holds the database file and the blob root, so a traversal out of the root would show too).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import veritas_store as vs

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# The contract, written independently of the implementation (DESIGN.md, "Keys").
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def valid_key(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= 1024
        and all(ID_PATTERN.fullmatch(s) for s in value.split("/"))
    )


# --- strategies ---------------------------------------------------------------------------------

segments = st.from_regex(ID_PATTERN, fullmatch=True)
TRICKY = [
    "", ".", "..", "../x", "a/../b", "/abs", "a//b", "a/", "a\\b", "a\x00b", "a\nb", "a\n",
    " a", "a b", "é", "ａ", "a/é", "-a", "_a", ".hidden", "a/.b", "x" * 128, "x" * 129,
    "/".join(["x" * 128] * 8), "/".join(["x" * 128] * 9), "%2e%2e/x", "C:\\x", "a:b", "~/x",
    "\ud800", "a\x7f", "\u202ea",
]  # fmt: skip
# lone surrogates, control characters, NUL: what text() alone seldom makes
odd_text = st.text(st.characters(categories=["Cs", "Cc", "Zs", "Lo"]), min_size=1, max_size=4)
ids = st.one_of(
    segments,
    odd_text,
    st.sampled_from(TRICKY),
    st.text(max_size=140),
    st.text(alphabet=st.characters(codec="ascii"), max_size=140),
    st.builds(lambda s, t: s + t, segments, st.sampled_from(TRICKY)),
)
keys = st.one_of(
    st.lists(segments, min_size=1, max_size=6).map("/".join),
    ids,
    st.lists(st.one_of(segments, st.sampled_from(TRICKY)), min_size=1, max_size=4).map("/".join),
)
not_text = st.one_of(st.none(), st.integers(), st.binary(max_size=8), st.lists(st.integers()))


# --- helpers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A fresh empty folder, also the current directory (dict configs resolve against it)."""
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        yield Path(folder)


def tree(root: Path) -> set[str]:
    """Every file and folder under ``root`` (SQLite's own side files left out)."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not re.search(r"\.db(-wal|-shm|-journal)?$", p.name)
    }


def stores_config(root: Path) -> dict[str, Any]:
    return {
        "journal": str(root / "journal.db"),  # two backends per section: writes are journaled
        "audits": {
            "read_order": ["sql", "memory"],
            "backends": {
                "sql": {"type": "sql", "url": f"sqlite:///{root / 'audits.db'}"},
                "memory": {"type": "memory"},
            },
        },
        "blobs": {
            "backends": {
                "disk": {"type": "fsspec", "url": str(root / "blobs")},
                "memory": {"type": "memory"},
            }
        },
    }


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def stores(root: Path) -> Iterator[vs.Stores]:
    (root / "blobs").mkdir()  # the root stays once made; the folders under it do not
    with vs.open_stores(stores_config(root)) as opened:
        yield opened


def every_audit(stores: vs.Stores) -> dict[str, dict[str, vs.Audit]]:
    return {
        name: {a.id: a for a in store.list(limit=10_000).items}
        for name, store in stores.audits.backends.items()
    }


def every_blob(stores: vs.Stores) -> dict[str, list[str]]:
    return {name: list(store.list()) for name, store in stores.blobs.backends.items()}


# --- audit ids ----------------------------------------------------------------------------------


@SETTINGS
@given(audit_id=st.one_of(ids, not_text))
@example(audit_id="../../etc/passwd")
@example(audit_id="x" * 128)
def test_audit_ids_are_accepted_and_round_trip_or_rejected(
    stores: vs.Stores, root: Path, audit_id: Any
) -> None:
    before = tree(root)
    if not valid_id(audit_id):
        with pytest.raises(vs.InvalidKey):
            vs.Audit(id=audit_id, url="https://x.example")
        for call in (stores.audits.get, stores.audits.delete):
            with pytest.raises(vs.InvalidKey):
                call(audit_id)
        for store in stores.audits.backends.values():  # each backend checks too
            with pytest.raises(vs.InvalidKey):
                store.get(audit_id)
            with pytest.raises(vs.InvalidKey):
                store.delete(audit_id)
        with pytest.raises(vs.InvalidKey):
            stores.screenshots.load(audit_id, 0)
        assert every_audit(stores) == {"sql": {}, "memory": {}}
        assert tree(root) == before
        return
    audit = vs.Audit(id=audit_id, url="https://x.example", narrative=audit_id)
    stores.audits.create(audit)
    try:
        assert stores.audits.get(audit_id) == audit
        assert every_audit(stores) == {"sql": {audit_id: audit}, "memory": {audit_id: audit}}
        with pytest.raises(vs.AuditExists):
            stores.audits.create(audit)
    finally:
        assert stores.audits.delete(audit_id) is True
    assert stores.audits.get(audit_id) is None


# --- blob keys ----------------------------------------------------------------------------------


@SETTINGS
@given(key=st.one_of(keys, not_text), data=st.binary(max_size=64))
@example(key="../outside", data=b"x")
@example(key="a/../../outside", data=b"x")
@example(key="/".join(["k" * 128] * 8), data=b"long")
def test_blob_keys_are_accepted_and_round_trip_or_rejected(
    stores: vs.Stores, root: Path, key: Any, data: bytes
) -> None:
    before = tree(root)
    if not valid_key(key):
        with pytest.raises(vs.InvalidKey):
            stores.blobs.put(key, data)
        for call in (stores.blobs.get, stores.blobs.exists, stores.blobs.delete, stores.blobs.url):
            with pytest.raises(vs.InvalidKey):
                call(key)
        for store in stores.blobs.backends.values():
            with pytest.raises(vs.InvalidKey):
                store.put(key, data)
        assert every_blob(stores) == {"disk": [], "memory": []}
        assert tree(root) == before
        return
    info = stores.blobs.put(key, data, "application/octet-stream")
    try:
        assert (info.key, info.size, info.sha256) == (
            key,
            len(data),
            hashlib.sha256(data).hexdigest(),
        )
        assert every_blob(stores) == {"disk": [key], "memory": [key]}
        for store in stores.blobs.backends.values():
            assert store.get(key) == data
        on_disk = root / "blobs" / key
        assert on_disk.read_bytes() == data
        assert on_disk.resolve().is_relative_to((root / "blobs").resolve())
        assert list(stores.blobs.list(key)) == [key]
    finally:
        assert stores.blobs.delete(key) is True
    assert not stores.blobs.exists(key)
    assert tree(root) == before  # the folders the key made are gone again


@SETTINGS
@given(prefix=st.one_of(keys, keys.map(lambda k: k + "/"), not_text))
def test_listing_prefixes_are_accepted_or_rejected(stores: vs.Stores, prefix: Any) -> None:
    must_accept = isinstance(prefix, str) and (
        prefix == "" or valid_key(prefix) or (prefix.endswith("/") and valid_key(prefix[:-1]))
    )
    try:
        listed = list(stores.blobs.list(prefix))
    except vs.InvalidKey:
        assert not must_accept, prefix
        return
    assert isinstance(prefix, str)
    assert listed == []


# --- screenshot payloads ------------------------------------------------------------------------

MAGIC = [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x00\x00\x00WEBPVP8",
]
images = st.builds(lambda m, t: m + t, st.sampled_from(MAGIC), st.binary(min_size=1, max_size=48))
raw = st.one_of(images, st.binary(max_size=48))


def as_base64(data: bytes, style: int) -> str:
    text = base64.b64encode(data).decode()
    if style == 1:
        return "data:image/png;base64," + text
    if style == 2:  # line-wrapped, as some encoders do
        return "\n".join(text[i : i + 8] for i in range(0, len(text), 8)) + "\n"
    return text


payloads = st.one_of(
    raw,
    st.builds(as_base64, raw, st.integers(0, 2)),
    raw.map(bytearray),
    st.text(max_size=40),
    st.builds(lambda t: t + "=", st.text(alphabet="ABCDEFGHabcdefgh0123+/", max_size=12)),
    st.sampled_from(["data:image/png;base64,", "data:image/png;base64,%%%", "====", "\ud800"]),
    st.none(),
    st.integers(),
    st.lists(st.integers(0, 255), max_size=8),
)
indexes = st.one_of(st.integers(-3, 10_003), st.sampled_from([True, None, "1", 1.0, 9999, 10_000]))
labels = st.one_of(st.text(max_size=12), odd_text, st.sampled_from(["a\x00b", "\ud800"]), not_text)


def decoded(payload: Any) -> bytes | None:
    """The image bytes a payload stands for under the contract, or None if it is not one."""
    if isinstance(payload, bytes | bytearray):
        data = bytes(payload)
    elif isinstance(payload, str):
        text = re.sub(r"^data:image/[A-Za-z0-9.+-]+;base64,", "", payload.strip(), flags=re.I)
        try:
            data = base64.b64decode("".join(text.split()), validate=True)
        except ValueError:
            return None
    else:
        return None
    if any(data.startswith(m) and len(data) > len(m) for m in MAGIC) or (
        data.startswith(b"\xff\xd8\xff") and len(data) > 3
    ):
        return data
    return None


def storable_label(label: Any) -> bool:
    if not isinstance(label, str) or "\x00" in label:
        return False
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_index(index: Any) -> bool:
    return isinstance(index, int) and not isinstance(index, bool) and 0 <= index <= 9999


_fresh = iter(range(10**9))


@settings(SETTINGS, max_examples=300)
@given(
    payload=payloads,
    index=indexes,
    label=labels,
    # mostly an audit that exists, so the other inputs decide
    audit_id=st.one_of(st.just("<existing>"), st.just("<existing>"), st.just("absent"), ids),
    through_recorder=st.booleans(),
)
def test_screenshot_payloads_are_saved_and_load_back_or_rejected(
    stores: vs.Stores,
    root: Path,
    payload: Any,
    index: Any,
    label: Any,
    audit_id: Any,
    through_recorder: bool,
) -> None:
    save_case(stores, root, payload, index, label, audit_id, through_recorder)


@SETTINGS
@given(
    payload=st.one_of(images, st.builds(as_base64, images, st.integers(0, 2))),
    index=indexes,
    label=labels,
    through_recorder=st.booleans(),
)
@example(payload=MAGIC[0] + b"x", index=0, label="\ud800", through_recorder=False)
def test_labels_and_indexes_of_a_valid_image_are_checked_before_anything_is_written(
    stores: vs.Stores, root: Path, payload: Any, index: Any, label: Any, through_recorder: bool
) -> None:
    save_case(stores, root, payload, index, label, "<existing>", through_recorder)


def save_case(
    stores: vs.Stores,
    root: Path,
    payload: Any,
    index: Any,
    label: Any,
    audit_id: Any,
    through_recorder: bool,
) -> None:
    """Save one screenshot; check it round-trips, or was rejected with nothing written."""
    original = vs.Audit(id=f"shots-{next(_fresh)}", url="https://x.example")
    stores.audits.create(original)
    if audit_id == "<existing>":
        audit_id = original.id
    audits_before, blobs_before, files_before = every_audit(stores), every_blob(stores), tree(root)
    image = decoded(payload)
    accept = (
        audit_id == original.id
        and valid_index(index)
        and storable_label(
            f"screenshot {index}" if through_recorder and label is None else label  # its default
        )
        and image is not None
    )
    try:
        if through_recorder:
            event = {"type": "screenshot", "index": index, "label": label, "data": payload}
            shot = vs.AuditRecorder(stores).event(audit_id, event)
        else:
            shot = stores.screenshots.save(audit_id, index, label, payload)
    except (vs.InvalidImage, vs.InvalidKey, vs.InvalidRecord, vs.AuditNotFound) as exc:
        assert not accept, f"rejected a valid screenshot: {exc!r}"
        assert every_audit(stores) == audits_before
        assert every_blob(stores) == blobs_before
        assert tree(root) == files_before
        stores.audits.delete(original.id)
        return
    if through_recorder and payload is None:  # the runner's missing file: logged, not saved
        assert audit_id == original.id and valid_index(index) and shot is None
        assert every_audit(stores) == audits_before and every_blob(stores) == blobs_before
        stores.audits.delete(original.id)
        return
    assert accept, f"accepted {payload!r} (index {index!r}, label {label!r}, id {audit_id!r})"
    assert shot is not None and image is not None
    assert stores.screenshots.load(original.id, index) == image
    stored = stores.audits.get(original.id)
    assert stored == attrs.evolve(original, screenshots=(shot,), updated_at=stored.updated_at)
    assert every_audit(stores)["memory"][original.id] == stored
    assert {k: set(v) - set(blobs_before[k]) for k, v in every_blob(stores).items()} == {
        "disk": {shot.blob_key},
        "memory": {shot.blob_key},
    }
    assert (root / "blobs" / shot.blob_key).read_bytes() == image
    assert shot.sha256 == hashlib.sha256(image).hexdigest()
    stores.blobs.delete(shot.blob_key)
    stores.audits.delete(original.id)


# --- configs ------------------------------------------------------------------------------------

UNSET = "VERITAS_TEST_SURELY_UNSET_VARIABLE"

scalars = st.one_of(
    st.booleans(),
    st.integers(-2, 3),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        ["true", "FALSE", "Yes", "off", "maybe", " 1 ", "2", f"${{{UNSET}}}",
         f"${{{UNSET}:-true}}", f"${{{UNSET}:-}}", "${HOME}", "${", "$", "memory", "sql", "fsspec"]
    ),
)  # fmt: skip
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), scalars, max_size=2),
    st.none(),
)
PLACES = [
    (),  # the top level
    ("audits",),
    ("blobs",),
    ("audits", "backends"),
    ("blobs", "backends"),
    ("audits", "backends", "db"),
    ("audits", "backends", "mem"),
    ("blobs", "backends", "disk"),
]
FIELDS = [
    "type", "enabled", "required", "url", "read_order", "backends", "table_prefix",
    "busy_timeout", "echo", "pool_size", "storage_options", "path", "bogus", "audits", "blobs",
]  # fmt: skip


def base_config() -> dict[str, Any]:
    return {
        "audits": {
            "read_order": ["db", "mem"],
            "backends": {
                "db": {"type": "sql", "url": "sqlite:///data/audits.db"},
                "mem": {"type": "memory"},
            },
        },
        "blobs": {"backends": {"disk": {"type": "fsspec", "url": "data/blobs"}}},
    }


@st.composite
def configs(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[tuple[str, ...], str, Any]]]:
    """The working config with 1-3 random changes: a key set to a random value, or removed."""
    cfg = base_config()
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(PLACES))
        field = draw(st.sampled_from(FIELDS))
        table: Any = cfg
        for part in place:
            table = table.get(part) if isinstance(table, dict) else None
        if not isinstance(table, dict):
            continue
        if draw(st.integers(0, 5)) == 0:
            table.pop(field, None)
            changes.append((place, field, "<removed>"))
        else:
            value = draw(values)
            table[field] = value
            changes.append((place, field, value))
    return cfg, changes


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=configs())
def test_configs_open_and_work_or_are_rejected_with_nothing_written(
    case: tuple[dict[str, Any], list[Any]],
) -> None:
    cfg, changes = case
    os.environ.pop(UNSET, None)
    with workdir() as root:
        try:
            stores = vs.open_stores(cfg)
        except (vs.ConfigError, vs.PluginError, vs.BackendUnavailable) as exc:
            assert str(exc), changes
            assert tree(root) == set(), (changes, exc)
            if isinstance(exc, vs.ConfigError):
                assert "<dict>" in str(exc)  # it says where
            return
        with stores:
            audit = vs.Audit(id="cfg-1", url="https://x.example")
            stores.audits.create(audit)
            assert stores.audits.get("cfg-1") == audit
            for store in stores.audits.backends.values():
                assert store.get("cfg-1") == audit
            stores.blobs.put("cfg-1/0000.png", MAGIC[0] + b"x")
            assert stores.blobs.get("cfg-1/0000.png") == MAGIC[0] + b"x"
        # whatever the config wrote stays in its folder
        assert all(Path(root, p).resolve().is_relative_to(root.resolve()) for p in tree(root))


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"enabled": "maybe"}, "audits.backends.db.enabled"),
        ({"required": 2}, "audits.backends.db.required"),
        ({"type": 7}, "audits.backends.db.type"),
        ({"url": f"${{{UNSET}}}"}, "audits.backends.db.url"),
        ({"busy_timeout": "soon"}, "audits.backends.db.busy_timeout"),
        ({"table_prefix": "1bad"}, "audits.backends.db"),
        ({"bogus": 1}, "audits.backends.db.bogus"),
    ],
)
def test_a_rejected_config_names_the_key(change: dict[str, Any], where: str) -> None:
    cfg = base_config()
    cfg["audits"]["backends"]["db"].update(change)
    with workdir() as root:
        with pytest.raises(vs.ConfigError) as caught:
            vs.open_stores(cfg)
        assert f"at '{where}" in str(caught.value)
        assert tree(root) == set()
