"""The plugin's own tests: the veritas-store conformance kit, plus what is special here."""

from __future__ import annotations

import json

import pytest
from veritas_store_jsonfolder import JsonFolderAuditStore

import veritas_store as vs
from veritas_store.testing import AuditStoreContract, sample_audit


class TestJsonFolderContract(AuditStoreContract):
    @pytest.fixture
    def audit_store(self, tmp_path):
        store = JsonFolderAuditStore(str(tmp_path / "audits"))
        yield store
        store.close()

    @pytest.fixture
    def reopen_audit_store(self, tmp_path):
        return lambda: JsonFolderAuditStore(str(tmp_path / "audits"))


def test_one_readable_json_file_per_audit(tmp_path):
    store = JsonFolderAuditStore(str(tmp_path))
    audit = sample_audit("a1")
    store.create(audit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a1.json"]  # no temporary file left
    data = json.loads((tmp_path / "a1.json").read_text(encoding="utf-8"))
    assert data["created_at"] == "2026-05-04T12:30:15.123456+00:00"
    assert data["findings"][0]["pattern_type"] == "fake_timer"
    assert vs.Audit.from_dict(data) == audit


def test_selected_from_a_config_file(tmp_path, monkeypatch):
    config = tmp_path / "veritas-store.toml"
    config.write_text(
        """
        [audits.backends.files]
        type = "jsonfolder"
        path = "data/audits"
        fsync = "${JSONFOLDER_FSYNC:-true}"

        [blobs.backends.mem]
        type = "memory"
        """,
        encoding="utf-8",
    )
    monkeypatch.setenv("JSONFOLDER_FSYNC", "no")
    with vs.open_stores(config) as stores:
        stores.audits.create(sample_audit("cfg"))
    assert (tmp_path / "data" / "audits" / "cfg.json").is_file()


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(vs.ConfigError, match="fsync"):
        vs.open_stores(
            {"audits": {"backends": {"f": {"type": "jsonfolder", "path": "x", "fsync": "maybe"}}}}
        )
    with pytest.raises(vs.ConfigError, match="'folder'"):
        vs.open_stores({"audits": {"backends": {"f": {"type": "jsonfolder", "folder": "x"}}}})
