"""Done when: after any single backend failure, ``veritas-store repair`` followed by
``veritas-store verify`` reports zero differences.

Each scenario makes one backend fail (through a ``faulty`` wrapper over SQLite files and local
folders), then runs the two commands on a config that names the same files without the
wrapper, as an operator would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner
from faulty import FaultyPlugin

import veritas_store as vs
from veritas_store.cli import main
from veritas_store.demo import make_png
from veritas_store.testing import sample_audit

TEMPLATE = """
journal = "journal.db"

[audits]
read_order = [{audit_order}]

[audits.backends.db]
type = "sql"
url = "sqlite:///db.sqlite"
required = {db_required}

[audits.backends.mirror]
{wrap}type = "{kind}"
url = "sqlite:///mirror.sqlite"
required = {mirror_required}

[blobs.backends.disk]
type = "fsspec"
url = "disk"

[blobs.backends.copy]
{wrap_blobs}type = "{blob_kind}"
url = "copy"
required = false
"""


def configs(tmp_path: Path, *, mirror_first: bool = False, mirror_required: bool = False):
    """The application's config (mirror and copy wrapped in faulty) and the operator's."""
    order = '"mirror", "db"' if mirror_first else '"db", "mirror"'
    common = {
        "audit_order": order,
        "db_required": "true",
        "mirror_required": "true" if mirror_required else "false",
    }
    app = tmp_path / "app.toml"
    app.write_text(
        TEMPLATE.format(
            **common, wrap='inner = "sql"\n', kind="faulty",
            wrap_blobs='inner = "fsspec"\n', blob_kind="faulty",
        )
    )  # fmt: skip
    ops = tmp_path / "ops.toml"
    ops.write_text(
        TEMPLATE.format(**common, wrap="", kind="sql", wrap_blobs="", blob_kind="fsspec")
    )
    return app, ops


def png(n: int) -> bytes:
    return make_png(4, 4, (n, 1, 2))


def seed(stores: vs.Stores) -> None:
    for n in range(5):
        stores.audits.create(sample_audit(f"a{n}"))
        stores.blobs.put(f"a{n}/0000.png", png(n), "image/png")


def _audit_writes(stores: vs.Stores) -> None:
    stores.audits.create(sample_audit("new"))
    stores.audits.update(attrs.evolve(sample_audit("a1"), narrative="changed"))
    stores.audits.delete("a2")


def _blob_writes(stores: vs.Stores) -> None:
    stores.blobs.put("new/0000.png", png(9), "image/png")
    stores.blobs.put("a1/0000.png", png(8), "image/png")
    stores.blobs.delete("a2/0000.png")


SCENARIOS: dict[str, tuple[str, str, Callable[[vs.Stores], None]]] = {
    "optional audit backend down": ("audits", "mirror", _audit_writes),
    "optional blob backend down": ("blobs", "copy", _blob_writes),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("error", ["ConnectionError", "TimeoutError", "OSError"])
def test_repair_then_verify_reports_zero_differences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, error: str
) -> None:
    monkeypatch.chdir(tmp_path)
    kind, backend, writes = SCENARIOS[scenario]
    app, ops = configs(tmp_path)
    with vs.open_stores(app, plugins=[FaultyPlugin()]) as stores:
        seed(stores)
        composite = stores.audits if kind == "audits" else stores.blobs
        composite.backends[backend].fail("create", "update", "delete", "put", error=error)
        writes(stores)
    assert_repaired_and_clean(ops, expect_differences=True)


def test_a_failed_required_follower_is_repaired_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app, ops = configs(tmp_path, mirror_required=True)
    with vs.open_stores(app, plugins=[FaultyPlugin()]) as stores:
        seed(stores)
        stores.audits.backends["mirror"].fail("create", "update", "delete")
        for call in (
            lambda: stores.audits.create(sample_audit("new")),
            lambda: stores.audits.update(attrs.evolve(sample_audit("a1"), narrative="x")),
            lambda: stores.audits.delete("a2"),
        ):
            with pytest.raises(vs.WriteError):
                call()
    assert_repaired_and_clean(ops, expect_differences=True)


def test_a_failed_optional_authoritative_backend_is_repaired_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app, ops = configs(tmp_path, mirror_first=True)  # the optional mirror is authoritative
    with vs.open_stores(app, plugins=[FaultyPlugin()]) as stores:
        assert stores.audits.authoritative == "mirror"
        seed(stores)
        stores.audits.backends["mirror"].fail("create", "update", "delete")
        _audit_writes(stores)
    assert_repaired_and_clean(ops, expect_differences=True)


def verify(config: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["verify", "--config", str(config), "--json"])
    return result.exit_code, json.loads(result.output)


def assert_repaired_and_clean(config: Path, *, expect_differences: bool) -> None:
    code, before = verify(config)
    if expect_differences:  # the failure really left the backends apart
        assert code == 1 and before["clean"] is False
    result = CliRunner().invoke(main, ["repair", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["remaining"] == 0
    code, after = verify(config)
    assert code == 0 and after["clean"] is True, after
