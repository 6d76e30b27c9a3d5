"""The config rules of DESIGN.md, through ``open_stores`` and ``load_config``, on real files.

Every test runs in its own empty current directory (``tmp_path/cwd``), so the embedded default's
``./veritas-data`` and every relative path land there and nowhere else.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

import veritas_store as vs
from veritas_store import ConfigError
from veritas_store.wiring.config import load_config

MEMORY_AUDITS = {"backends": {"memory": {"type": "memory"}}}
MEMORY_BLOBS = {"backends": {"mem": {"type": "fsspec", "url": "memory://veritas-config-tests"}}}


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    for name in ("VERITAS_STORE_CONFIG", "USE_DB_PERSISTENCE", "VERITAS_STORE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(source) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        stores = vs.open_stores(source)
        stores.close()  # only reached when the test is about to fail
    return info.value


def audit(audit_id: str = "a1") -> vs.Audit:
    return vs.Audit(id=audit_id, url="https://example.com")


# --- where the config comes from ------------------------------------------------------------


def test_toml_file(tmp_path):
    path = write(
        tmp_path / "conf" / "veritas-store.toml",
        """
        [audits.backends.primary]
        type = "memory"

        [blobs.backends.disk]
        type = "fsspec"
        url = "blobs"
        """,
    )
    with vs.open_stores(path) as stores:
        assert stores.config.source == str(path)
        assert list(stores.audits.backends) == ["primary"]
        stores.blobs.put("k/1", b"data")
    assert (tmp_path / "conf" / "blobs" / "k" / "1").read_bytes() == b"data"


def test_a_string_path_works_like_a_path(tmp_path):
    path = write(tmp_path / "c.toml", '[audits.backends.m]\ntype = "memory"\n')
    assert load_config(str(path)).audits.backends["m"].type == "memory"


def test_dict(clean_env):
    with vs.open_stores({"audits": MEMORY_AUDITS, "blobs": MEMORY_BLOBS}) as stores:
        assert stores.config.source == "<dict>"
        record = audit()
        stores.audits.create(record)
        assert stores.audits.get("a1") == record
    assert list(clean_env.iterdir()) == []


def test_embedded_default(clean_env):
    with vs.open_stores() as stores:
        assert stores.config.source == "<embedded default>"
        assert list(stores.audits.backends) == ["sql", "memory"]  # read SQLite first
        assert list(stores.blobs.backends) == ["local"]
        stores.audits.create(audit())
        shot = stores.screenshots.save("a1", 0, "home", _png())
        assert stores.audits.get_with_source("a1")[1] == "sql"
    assert (clean_env / "veritas-data" / "audits.db").is_file()
    assert (clean_env / "veritas-data" / "blobs" / shot.blob_key).read_bytes() == _png()
    # a new process (here: a new open) reads the audit back from SQLite
    with vs.open_stores() as stores:
        assert stores.audits.get_with_source("a1")[0].screenshots == (shot,)


@pytest.mark.parametrize("value", ["false", "0", "no", "off", "FALSE", "Off", "No"])
def test_embedded_default_rollback_to_memory(clean_env, monkeypatch, value):
    monkeypatch.setenv("USE_DB_PERSISTENCE", value)
    with vs.open_stores() as stores:
        assert list(stores.audits.backends) == ["memory"]
        stores.audits.create(audit())
        assert stores.audits.get_with_source("a1")[1] == "memory"
    assert not (clean_env / "veritas-data" / "audits.db").exists()


def test_env_var_names_the_config_file(tmp_path, monkeypatch):
    path = write(
        tmp_path / "elsewhere" / "from-env.toml",
        """
        [audits.backends.only]
        type = "memory"
        """,
    )
    monkeypatch.setenv("VERITAS_STORE_CONFIG", str(path))
    with vs.open_stores() as stores:
        assert stores.config.source == str(path)
        assert list(stores.audits.backends) == ["only"]


def test_env_var_naming_a_missing_file_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("VERITAS_STORE_CONFIG", str(missing))
    err = config_error(None)
    assert str(missing) in str(err)
    assert "not found" in str(err)


def test_explicit_source_wins_over_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("VERITAS_STORE_CONFIG", str(tmp_path / "nope.toml"))
    with vs.open_stores({"audits": MEMORY_AUDITS, "blobs": MEMORY_BLOBS}) as stores:
        assert stores.config.source == "<dict>"


def test_missing_file(tmp_path):
    missing = tmp_path / "missing.toml"
    err = config_error(missing)
    assert str(missing) in str(err) and "not found" in str(err)


def test_invalid_toml_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path / "broken.toml", '[audits\ntype = "memory"\n')
    err = config_error(path)
    assert str(path) in str(err)
    assert "invalid TOML" in str(err) and "line 1" in str(err)


# --- missing sections -------------------------------------------------------------------------


def test_missing_blobs_section_takes_the_embedded_default(clean_env):
    cfg = load_config({"audits": MEMORY_AUDITS})
    assert list(cfg.blobs.backends) == ["local"]
    local = cfg.blobs.backends["local"]
    assert local.type == "fsspec"
    assert local.options == {"url": str(clean_env / "veritas-data" / "blobs")}


def test_missing_audits_section_takes_the_embedded_default(clean_env, monkeypatch):
    cfg = load_config({"blobs": MEMORY_BLOBS})
    assert list(cfg.audits.backends) == ["sql", "memory"]
    assert cfg.audits.read_order == ("sql", "memory")
    assert cfg.audits.backends["sql"].options == {
        "url": f"sqlite:///{clean_env / 'veritas-data' / 'audits.db'}",
        "auto_upgrade": True,
    }
    assert cfg.audits.backends["sql"].enabled is True
    monkeypatch.setenv("USE_DB_PERSISTENCE", "off")  # the default's ${...} is expanded too
    assert load_config({"blobs": MEMORY_BLOBS}).audits.backends["sql"].enabled is False


def test_an_empty_file_is_the_embedded_default(tmp_path):
    cfg = load_config(write(tmp_path / "empty.toml", ""))
    assert list(cfg.audits.backends) == ["sql", "memory"]
    assert list(cfg.blobs.backends) == ["local"]


# --- ${VAR} expansion -------------------------------------------------------------------------


def test_expansion_in_every_string_nested_tables_and_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("VS_TYPE", "memory")
    monkeypatch.setenv("VS_FIRST", "primary")
    monkeypatch.setenv("VS_REGION", "eu-west-1")
    monkeypatch.setenv("VS_BUCKET", "shots")
    path = write(
        tmp_path / "c.toml",
        """
        [audits]
        read_order = ["${VS_FIRST}", "${VS_SECOND:-secondary}"]

        [audits.backends.primary]
        type = "${VS_TYPE}"

        [audits.backends.secondary]
        type = "${VS_UNSET_TYPE:-memory}"

        [blobs.backends.s3]
        type = "fsspec"
        url = "s3://${VS_BUCKET}/${VS_PREFIX:-prod}/x"

        [blobs.backends.s3.storage_options]
        tags = ["a-${VS_BUCKET}", "${VS_NONE:-}", 7]

        [blobs.backends.s3.storage_options.client_kwargs]
        region_name = "${VS_REGION}"
        """,
    )
    cfg = load_config(path)
    assert cfg.audits.read_order == ("primary", "secondary")
    assert cfg.audits.backends["primary"].type == "memory"
    assert cfg.audits.backends["secondary"].type == "memory"
    assert cfg.blobs.backends["s3"].options == {
        "url": "s3://shots/prod/x",
        "storage_options": {
            "client_kwargs": {"region_name": "eu-west-1"},
            "tags": ["a-shots", "", 7],
        },
    }


def test_empty_variable_takes_the_default_like_the_shell(monkeypatch):
    monkeypatch.setenv("VS_EMPTY", "")
    cfg = load_config(
        {"audits": {"backends": {"m": {"type": "${VS_EMPTY:-memory}"}}}, "blobs": MEMORY_BLOBS}
    )
    assert cfg.audits.backends["m"].type == "memory"


def test_unset_variable_without_default_names_variable_key_and_file(tmp_path):
    path = write(
        tmp_path / "c.toml",
        """
        [audits.backends.m]
        type = "memory"

        [blobs.backends.s3]
        type = "fsspec"
        url = "s3://bucket/p"
        storage_options = { client_kwargs = { endpoint_url = "${VS_SURELY_UNSET_ENDPOINT}" } }
        """,
    )
    err = config_error(path)
    assert "VS_SURELY_UNSET_ENDPOINT" in str(err)
    assert "blobs.backends.s3.storage_options.client_kwargs.endpoint_url" in str(err)
    assert str(path) in str(err)


def test_unset_variable_in_a_list_names_the_item(clean_env):
    err = config_error(
        {
            "audits": {"read_order": ["${VS_SURELY_UNSET}"], **MEMORY_AUDITS},
            "blobs": MEMORY_BLOBS,
        }
    )
    assert "VS_SURELY_UNSET" in str(err)
    assert "audits.read_order[0]" in str(err)
    assert "<dict>" in str(err)


# --- booleans ---------------------------------------------------------------------------------

TRUE = [True, 1, "true", "True", "TRUE", "1", "yes", "YES", "Yes", "on", "ON", "On"]
FALSE = [False, 0, "false", "False", "FALSE", "0", "no", "NO", "No", "off", "OFF", "Off"]


@pytest.mark.parametrize("value", TRUE + FALSE)
def test_booleans(value):
    expected = value in TRUE
    cfg = load_config(
        {
            "audits": {
                "backends": {
                    "a": {"type": "memory"},
                    "b": {"type": "memory", "enabled": value, "required": value},
                }
            },
            "blobs": MEMORY_BLOBS,
        }
    )
    b = cfg.audits.backends["b"]
    assert (b.enabled, b.required) == (expected, expected)


@pytest.mark.parametrize(("value", "expected"), [("yes", True), ("Off", False), ("0", False)])
def test_booleans_from_env_vars(tmp_path, monkeypatch, value, expected):
    monkeypatch.setenv("VS_FLAG", value)
    path = write(
        tmp_path / "c.toml",
        """
        [audits.backends.a]
        type = "memory"

        [audits.backends.b]
        type = "memory"
        enabled = "${VS_FLAG}"
        required = "${VS_FLAG}"
        """,
    )
    with vs.open_stores(path) as stores:
        assert ("b" in stores.audits.backends) is expected
        assert stores.config.audits.backends["b"].required is expected


@pytest.mark.parametrize("key", ["enabled", "required"])
@pytest.mark.parametrize("value", ["maybe", 2, "", "tru"])
def test_bad_boolean_names_the_key_and_the_file(tmp_path, key, value):
    path = write(
        tmp_path / "c.toml",
        f"""
        [audits.backends.m]
        type = "memory"
        {key} = {value!r}
        """.replace("'", '"'),
    )
    err = config_error(path)
    assert str(path) in str(err)
    assert f"audits.backends.m.{key}" in str(err)
    assert "boolean" in str(err)


def test_bad_boolean_from_env_var_names_the_key(monkeypatch):
    monkeypatch.setenv("USE_DB_PERSISTENCE", "maybe")
    err = config_error(None)
    assert "<embedded default>" in str(err)
    assert "audits.backends.sql.enabled" in str(err)
    assert "maybe" in str(err)


def test_boolean_factory_options_accept_the_same_spellings(monkeypatch):
    """DESIGN: booleans accept true/false, 1/0, yes/no, on/off; ${VAR} always yields text."""
    monkeypatch.setenv("VS_SQL_ECHO", "no")
    source = {
        "audits": {
            "backends": {
                "db": {"type": "sql", "url": "sqlite:///:memory:", "echo": "${VS_SQL_ECHO}"}
            }
        },
        "blobs": MEMORY_BLOBS,
    }
    with vs.open_stores(source) as stores:
        stores.audits.create(audit())
        assert stores.audits.get("a1") is not None


# --- relative paths ---------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_files_folder(tmp_path, clean_env):
    folder = tmp_path / "deploy"
    path = write(
        folder / "c.toml",
        """
        [audits.backends.db]
        type = "sql"
        url = "sqlite:///data/audits.db"

        [blobs.backends.disk]
        type = "fsspec"
        url = "./blobs"
        """,
    )
    with vs.open_stores(path) as stores:
        stores.audits.create(audit())
        stores.blobs.put("a1/0000.png", _png())
    assert (folder / "data" / "audits.db").is_file()
    assert (folder / "blobs" / "a1" / "0000.png").read_bytes() == _png()
    assert list(clean_env.iterdir()) == []  # nothing in the current directory


def test_relative_config_path_resolves_against_its_folder_not_the_cwd(tmp_path, clean_env):
    write(clean_env / "sub" / "c.toml", '[blobs.backends.d]\ntype = "fsspec"\nurl = "b"\n')
    cfg = load_config("sub/c.toml")
    assert cfg.blobs.backends["d"].options["url"] == str(clean_env / "sub" / "b")


def test_relative_paths_in_a_dict_resolve_against_the_cwd(clean_env):
    cfg = load_config(
        {
            "audits": {"backends": {"db": {"type": "sql", "url": "sqlite:///rel.db"}}},
            "blobs": {"backends": {"d": {"type": "fsspec", "url": "rel/blobs", "path": "p"}}},
        }
    )
    assert cfg.audits.backends["db"].options["url"] == f"sqlite:///{clean_env / 'rel.db'}"
    assert cfg.blobs.backends["d"].options == {
        "url": str(clean_env / "rel" / "blobs"),
        "path": str(clean_env / "p"),
    }


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/prefix",
        "memory://x/y",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+psycopg://u@127.0.0.1:5432/test",
        "file:///srv/blobs",
        "/srv/blobs",
        "sqlite:////srv/abs.db",
    ],
)
def test_urls_and_absolute_paths_are_left_alone(tmp_path, url):
    path = write(tmp_path / "c.toml", f'[blobs.backends.d]\ntype = "fsspec"\nurl = "{url}"\n')
    assert load_config(path).blobs.backends["d"].options["url"] == url


def test_path_option_resolves_like_url(tmp_path):
    path = write(
        tmp_path / "c.toml", '[blobs.backends.d]\ntype = "fsspec"\nurl = "/abs"\npath = "x/y"\n'
    )
    assert load_config(path).blobs.backends["d"].options["path"] == str(tmp_path / "x" / "y")


def test_other_options_are_not_treated_as_paths(tmp_path):
    path = write(
        tmp_path / "c.toml",
        '[audits.backends.db]\ntype = "sql"\nurl = "sqlite://"\ntable_prefix = "rel_"\n',
    )
    assert load_config(path).audits.backends["db"].options["table_prefix"] == "rel_"


# --- unknown keys, types and options ----------------------------------------------------------


def test_unknown_top_level_key(tmp_path):
    path = write(
        tmp_path / "c.toml",
        """
        [audit.backends.m]
        type = "memory"
        """,
    )
    err = config_error(path)
    assert "audit" in str(err).split(":", 1)[1]
    assert "unknown key" in str(err)
    assert str(path) in str(err)


@pytest.mark.parametrize("section", ["audits", "blobs"])
def test_unknown_key_in_a_section(section):
    source = {"audits": dict(MEMORY_AUDITS), "blobs": dict(MEMORY_BLOBS)}
    source[section]["read_ordr"] = ["memory"]
    err = config_error(source)
    assert "read_ordr" in str(err)
    assert section in str(err)
    assert "<dict>" in str(err)


def test_misspelled_framework_key_is_an_unknown_option(tmp_path):
    path = write(
        tmp_path / "c.toml",
        """
        [audits.backends.m]
        type = "memory"
        enabeld = false
        """,
    )
    err = config_error(path)
    assert "audits.backends.m.enabeld" in str(err)
    assert str(path) in str(err)


def test_option_the_factory_does_not_take(tmp_path):
    path = write(
        tmp_path / "c.toml",
        """
        [audits.backends.m]
        type = "memory"

        [blobs.backends.disk]
        type = "fsspec"
        url = "blobs"
        root = "oops"
        """,
    )
    err = config_error(path)
    assert "blobs.backends.disk.root" in str(err)
    assert "'root'" in str(err)
    assert "url" in str(err) and "storage_options" in str(err)  # what it accepts
    assert str(path) in str(err)


def test_sql_option_the_factory_does_not_take():
    err = config_error(
        {
            "audits": {"backends": {"db": {"type": "sql", "url": "sqlite://", "pool": 5}}},
            "blobs": MEMORY_BLOBS,
        }
    )
    assert "audits.backends.db.pool" in str(err)


def test_misspelled_backend_type_names_the_key_and_lists_registered_types(tmp_path):
    path = write(
        tmp_path / "c.toml",
        """
        [audits.backends.main]
        type = "sqll"
        url = "sqlite:///a.db"
        """,
    )
    err = config_error(path)
    message = str(err)
    assert "audits.backends.main.type" in message
    assert "'sqll'" in message
    for registered in ("memory", "sql"):
        assert registered in message.split("registered types:")[1]
    assert str(path) in message


def test_misspelled_blob_type_lists_the_blob_types():
    err = config_error({"audits": MEMORY_AUDITS, "blobs": {"backends": {"b": {"type": "s3"}}}})
    assert "blobs.backends.b.type" in str(err)
    assert "fsspec" in str(err) and "memory" in str(err)


def test_a_disabled_backend_with_a_bad_type_is_still_reported():
    err = config_error(
        {
            "audits": {
                "backends": {"m": {"type": "memory"}, "x": {"type": "nope", "enabled": False}}
            },
            "blobs": MEMORY_BLOBS,
        }
    )
    assert "audits.backends.x.type" in str(err)


def test_missing_type():
    err = config_error({"audits": {"backends": {"m": {}}}, "blobs": MEMORY_BLOBS})
    assert "audits.backends.m" in str(err) and "type" in str(err)


def test_read_order_naming_an_undeclared_backend(tmp_path):
    path = write(
        tmp_path / "c.toml",
        """
        [audits]
        read_order = ["memory", "sqll"]

        [audits.backends.memory]
        type = "memory"
        """,
    )
    err = config_error(path)
    assert "audits.read_order[1]" in str(err)
    assert "'sqll'" in str(err)
    assert str(path) in str(err)


def test_read_order_must_be_a_list():
    err = config_error(
        {
            "audits": {
                "read_order": "memory",
                "backends": {"memory": {"type": "memory"}, "m": {"type": "memory"}},
            },
            "blobs": MEMORY_BLOBS,
        }
    )
    assert "audits.read_order" in str(err)
    assert "list" in str(err) or "array" in str(err)


def test_read_order_skips_disabled_backends_and_appends_the_rest():
    source = {
        "audits": {
            "read_order": ["c", "a"],
            "backends": {
                "a": {"type": "memory"},
                "b": {"type": "memory"},
                "c": {"type": "memory", "enabled": False},
            },
        },
        "blobs": MEMORY_BLOBS,
    }
    with vs.open_stores(source) as stores:
        assert list(stores.audits.backends) == ["a", "b"]


@pytest.mark.parametrize("section", ["audits", "blobs"])
def test_every_backend_disabled(section):
    source = {"audits": dict(MEMORY_AUDITS), "blobs": dict(MEMORY_BLOBS)}
    name = next(iter(source[section]["backends"]))
    source[section] = {"backends": {name: {**source[section]["backends"][name], "enabled": "off"}}}
    err = config_error(source)
    assert f"{section}.backends" in str(err)
    assert "disabled" in str(err)


def test_no_backends_declared():
    err = config_error({"audits": {"backends": {}}, "blobs": MEMORY_BLOBS})
    assert "audits.backends" in str(err)


def test_disabled_backends_are_not_opened(tmp_path):
    db = tmp_path / "never.db"
    source = {
        "audits": {
            "backends": {
                "memory": {"type": "memory"},
                "db": {"type": "sql", "url": f"sqlite:///{db}", "enabled": False},
                # would fail to connect if it were opened
                "pg": {
                    "type": "sql",
                    "url": "postgresql+psycopg://u:pw@127.0.0.1:9/x",
                    "enabled": "no",
                },
            }
        },
        "blobs": {
            "backends": {
                "mem": MEMORY_BLOBS["backends"]["mem"],
                "disk": {"type": "fsspec", "url": str(tmp_path / "never"), "enabled": False},
            }
        },
    }
    with vs.open_stores(source) as stores:
        assert list(stores.audits.backends) == ["memory"]
        assert list(stores.blobs.backends) == ["mem"]
        stores.audits.create(audit())
        stores.blobs.put("a1/x", b"1")
    assert not db.exists()
    assert not (tmp_path / "never").exists()


# --- every error names the file -------------------------------------------------------------

BAD_SOURCES = {
    "unknown top-level key": {"audits": MEMORY_AUDITS, "blobs": MEMORY_BLOBS, "extra": 1},
    "unknown section key": {"audits": {**MEMORY_AUDITS, "x": 1}, "blobs": MEMORY_BLOBS},
    "section not a table": {"audits": 3, "blobs": MEMORY_BLOBS},
    "backend not a table": {"audits": {"backends": {"m": 3}}, "blobs": MEMORY_BLOBS},
    "type not a string": {"audits": {"backends": {"m": {"type": 3}}}, "blobs": MEMORY_BLOBS},
    "unknown type": {"audits": {"backends": {"m": {"type": "x"}}}, "blobs": MEMORY_BLOBS},
    "unknown option": {
        "audits": {"backends": {"m": {"type": "memory", "x": 1}}},
        "blobs": MEMORY_BLOBS,
    },
    "bad option value": {
        "audits": {"backends": {"m": {"type": "sql", "url": "sqlite://", "table_prefix": "9"}}},
        "blobs": MEMORY_BLOBS,
    },
    "unset variable": {"audits": {"backends": {"m": {"type": "${VS_NOT_SET}"}}}},
    "bad read_order": {"audits": {"read_order": ["x"], **MEMORY_AUDITS}, "blobs": MEMORY_BLOBS},
}


def _to_toml(value, prefix=""):
    """A tiny TOML writer for the nested dicts above (inline tables for non-dict leaves)."""
    import json

    lines, tables = [], []
    for key, item in value.items():
        if isinstance(item, dict):
            tables.append((key, item))
        else:
            lines.append(f"{key} = {json.dumps(item)}")
    out = ([f"[{prefix}]"] if prefix and lines else []) + lines
    for key, item in tables:
        out.append(_to_toml(item, f"{prefix}.{key}" if prefix else key))
    return "\n".join(out)


@pytest.mark.parametrize("name", list(BAD_SOURCES))
def test_every_config_error_names_its_source(tmp_path, name):
    err = config_error(BAD_SOURCES[name])
    assert str(err).startswith("in <dict>")
    path = write(tmp_path / f"{name.replace(' ', '-')}.toml", _to_toml(BAD_SOURCES[name]))
    err = config_error(path)
    assert str(err).startswith(f"in {path}")


# --- secrets ----------------------------------------------------------------------------------

PASSWORDS = ["secretpw", "Zx9/Qw+e="]  # generated passwords often hold '/' and '+'


@pytest.mark.parametrize("password", PASSWORDS)
def test_secrets_never_appear_in_reprs(tmp_path, password):
    path = write(
        tmp_path / "c.toml",
        f"""
        [audits.backends.pg]
        type = "sql"
        url = "postgresql+psycopg://app:{password}@db.internal:5432/audits"

        [blobs.backends.s3]
        type = "fsspec"
        url = "s3://bucket/prefix"

        [blobs.backends.s3.storage_options]
        key = "AKIAEXAMPLEKEY"
        secret = "hunter2secret"
        token = "tok3n"
        client_kwargs = {{ aws_secret_access_key = "nested-s3cret" }}
        """,
    )
    cfg = load_config(path)
    secrets = [password, "AKIAEXAMPLEKEY", "hunter2secret", "tok3n", "nested-s3cret"]
    shown = [
        repr(cfg),
        repr(cfg.audits),
        repr(cfg.blobs),
        repr(cfg.audits.backends["pg"]),
        repr(cfg.blobs.backends["s3"]),
        str(cfg),
    ]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    assert "db.internal" in repr(cfg)  # still useful: only the secrets are masked
    assert "s3://bucket/prefix" in repr(cfg)


@pytest.mark.parametrize("password", PASSWORDS)
def test_secrets_never_appear_in_config_errors(tmp_path, password):
    sql = f"""
        [audits.backends.pg]
        type = "sql"
        url = "postgresql+psycopg://app:{password}@db.internal/audits"
    """
    s3 = """
        [blobs.backends.s3]
        type = "fsspec"
        url = "s3://bucket/prefix"
        storage_options = { secret = "hunter2secret", key = "AKIAEXAMPLEKEY" }
    """
    # the same [audits], but never opened: errors in [blobs] are then reported on their own
    sql_off = sql + "enabled = false\n[audits.backends.m]\ntype = 'memory'\n"
    broken = {
        # each is found before any backend is opened (db.internal does not resolve)
        "bad driver": sql.replace("+psycopg", "+nosuchdriver") + s3,
        "unknown sql option": sql + '        passwd = "hunter2secret"\n' + s3,
        "bad sql option value": sql + '        table_prefix = "9"\n' + s3,
        "unknown blob option": sql_off + s3 + '        secret_key = "hunter2secret"\n',
        "bad blob protocol": sql_off + s3.replace("s3://", "nosuchproto://"),
        "unknown section key": sql + s3 + "        [audits.extra]\n        x = 1\n",
        "bad read_order": "[audits]\nread_order = ['nope']\n" + sql + s3,
        "bad boolean": sql + '        enabled = "maybe"\n' + s3,
    }
    for name, text in broken.items():
        err = config_error(write(tmp_path / f"{name.replace(' ', '-')}.toml", text))
        for secret in (password, "hunter2secret", "AKIAEXAMPLEKEY"):
            assert secret not in str(err), (name, str(err))


def test_unreachable_backend_error_hides_the_password():
    source = {
        "audits": {
            "backends": {
                "pg": {"type": "sql", "url": "postgresql+psycopg://u:secretpw@127.0.0.1:9/x"}
            }
        },
        "blobs": MEMORY_BLOBS,
    }
    with pytest.raises(vs.BackendUnavailable) as info:
        vs.open_stores(source)
    assert "secretpw" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


# --- a config error changes nothing on disk -------------------------------------------------

VALID_AUDITS = """
[audits.backends.sql]
type = "sql"
url = "sqlite:///veritas-data/audits.db"

[audits.backends.memory]
type = "memory"
"""

BROKEN_BLOBS = {
    "misspelled type": '[blobs.backends.local]\ntype = "fsspecc"\nurl = "veritas-data/blobs"\n',
    "unknown option": '[blobs.backends.local]\ntype = "fsspec"\nurl = "veritas-data/blobs"\n'
    'rooot = "x"\n',
    "unset variable": '[blobs.backends.local]\ntype = "fsspec"\nurl = "${VS_NOT_SET_DIR}"\n',
    "unknown key": '[blobs]\nbackend = 1\n[blobs.backends.local]\ntype = "fsspec"\nurl = "b"\n',
}


@pytest.mark.parametrize("name", list(BROKEN_BLOBS))
def test_a_config_error_changes_nothing_on_disk(tmp_path, name):
    folder = tmp_path / "deploy"
    path = write(folder / "c.toml", VALID_AUDITS + "\n" + BROKEN_BLOBS[name])
    before = sorted(p.name for p in folder.iterdir())
    config_error(path)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert not (folder / "veritas-data").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("storage_options = false", "at 'blobs.backends.local.storage_options': expected Mapping"),
        ("storage_options = 3", "at 'blobs.backends.local.storage_options': expected Mapping"),
        ("url = 7", "at 'blobs.backends.local.url': expected a string, got int"),
        ('url = ["a"]', "at 'blobs.backends.local.url': expected a string, got list"),
    ],
)
def test_a_wrong_option_type_is_found_before_any_backend_is_opened(tmp_path, option, message):
    # The audits backend (SQLite) comes first: opening it would create its database.
    folder = tmp_path / "deploy"
    blobs = f'[blobs.backends.local]\ntype = "fsspec"\n{option}\n'
    if not option.startswith("url"):
        blobs += 'url = "veritas-data/blobs"\n'
    path = write(folder / "c.toml", VALID_AUDITS + "\n" + blobs)
    assert message in str(config_error(path))
    assert sorted(p.name for p in folder.iterdir()) == ["c.toml"]


@pytest.mark.parametrize(
    "blobs",
    [
        '[blobs.backends.local]\ntype = "fsspec"\nurl = ""\n',
        '[blobs.backends.local]\ntype = "fsspec"\nurl = "nosuchprotocol://x"\n',
        '[blobs.backends.local]\ntype = "fsspec"\nurl = "b"\n'
        '[blobs.backends.s3]\ntype = "fsspec"\nurl = "s3://"\n',
        '[blobs.backends.local]\ntype = "fsspec"\nurl = "b"\n'
        '[audits.backends.second]\ntype = "sql"\nurl = "sqlite:///x.db"\ntable_prefix = "1x"\n',
    ],
)
def test_a_bad_option_value_is_found_before_any_backend_is_opened(tmp_path, blobs):
    folder = tmp_path / "deploy"
    path = write(folder / "c.toml", VALID_AUDITS + "\n" + blobs)
    assert "invalid options" in str(config_error(path))
    assert sorted(p.name for p in folder.iterdir()) == ["c.toml"]


def test_a_database_driver_that_is_not_installed(tmp_path):
    pytest.importorskip("sqlalchemy.dialects.mssql")
    if importlib.util.find_spec("pyodbc") is not None:
        pytest.skip("pyodbc is installed: this test needs a driver that is not")
    config = {
        "audits": {"backends": {
            "db": {"type": "sql", "url": f"sqlite:///{tmp_path}/a.db"},
            "later": {"type": "sql", "url": "mssql+pyodbc://u:pw@h/db", "enabled": False},
        }},
        "blobs": {"backends": {"m": {"type": "memory"}}},
    }  # fmt: skip
    with vs.open_stores(config):  # disabled: its driver is not needed
        pass
    config["audits"]["backends"]["later"]["enabled"] = True
    with pytest.raises(vs.BackendUnavailable, match="later.*No module named 'pyodbc'"):
        vs.open_stores(config)


def test_a_filesystem_that_is_not_installed(tmp_path):
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed: this test needs a filesystem that is not")
    config = {
        "audits": {"backends": {"m": {"type": "memory"}}},
        "blobs": {"backends": {
            "local": {"type": "fsspec", "url": f"{tmp_path}/blobs"},
            "gcs": {"type": "fsspec", "url": "gcs://bucket/shots", "enabled": False},
        }},
    }  # fmt: skip
    with vs.open_stores(config):  # disabled: its filesystem is not needed
        pass
    config["blobs"]["backends"]["gcs"]["enabled"] = True
    with pytest.raises(ConfigError, match="blobs.backends.gcs.*not installed"):
        vs.open_stores(config)


def test_a_plugin_factory_can_check_its_options_before_anything_is_opened(tmp_path):
    opened = []

    class Picky:
        def __init__(self, size: int = 1) -> None:
            opened.append(self)

        @staticmethod
        def check_options(size: int = 1) -> None:
            if size > 3:
                raise ValueError(f"size must be at most 3, got {size}")

    class Plugin:
        @vs.hookimpl
        def register_blob_backends(self, register):
            register("picky", Picky)

    config = {
        "audits": {"backends": {"db": {"type": "sql", "url": f"sqlite:///{tmp_path}/d/a.db"}}},
        "blobs": {"backends": {"p": {"type": "picky", "size": "${PICKY_SIZE:-7}"}}},
    }
    with pytest.raises(ConfigError, match=r"at 'blobs.backends.p': invalid options: size must be"):
        vs.open_stores(config, plugins=[Plugin()])
    assert opened == [] and not (tmp_path / "d").exists()
    config["blobs"]["backends"]["p"]["size"] = "2"  # text converted before the check, too
    with vs.open_stores(config, plugins=[Plugin()]):
        assert len(opened) == 1


def test_option_types_follow_the_factory_hints():
    config = {
        "audits": {"backends": {"db": {"type": "sql", "url": "sqlite://", "echo": 1}}},
        "blobs": {"backends": {"m": {"type": "memory"}}},
    }
    assert "at 'audits.backends.db.echo': expected a boolean, got int" in str(config_error(config))
    config["audits"]["backends"]["db"].update(echo="yes", busy_timeout=2, pool_size=None)
    with vs.open_stores(config) as stores:  # text converts; an int is a number; None fits
        assert stores.audits.get("x") is None


def test_a_config_error_in_the_default_changes_nothing_on_disk(clean_env, monkeypatch):
    monkeypatch.setenv("USE_DB_PERSISTENCE", "perhaps")
    config_error(None)
    assert list(clean_env.iterdir()) == []


# --- helpers ----------------------------------------------------------------------------------


def _png() -> bytes:
    # the smallest valid PNG signature + IHDR header the screenshot sniffer accepts
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\x00\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_typed_options_are_converted_from_expanded_text(tmp_path, monkeypatch):
    monkeypatch.setenv("SQL_ECHO", "off")
    monkeypatch.setenv("SQL_BUSY", "2.5")
    config = {
        "audits": {
            "backends": {
                "db": {
                    "type": "sql",
                    "url": f"sqlite:///{tmp_path}/a.db",
                    "echo": "${SQL_ECHO}",
                    "busy_timeout": "${SQL_BUSY}",
                }
            }
        },
        "blobs": {"backends": {"m": {"type": "memory"}}},
    }
    with vs.open_stores(config) as stores:
        stores.audits.create(vs.Audit(id="x", url="u"))
        assert stores.audits.get("x") is not None


def test_an_option_that_does_not_convert_names_the_option(tmp_path):
    config = {
        "audits": {
            "backends": {
                "db": {
                    "type": "sql",
                    "url": f"sqlite:///{tmp_path}/a.db",
                    "pool_size": "many",
                }
            }
        },
        "blobs": {"backends": {"m": {"type": "memory"}}},
    }
    with pytest.raises(vs.ConfigError, match=r"audits\.backends\.db\.pool_size.*integer"):
        vs.open_stores(config)
    assert not (tmp_path / "a.db").exists()
