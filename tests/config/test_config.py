"""Tests for ledgerflow.config: discovery, !include, ${VAR}, validation and redaction."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from ledgerflow.config import (
    Credentials,
    find_config,
    load_settings,
    redact,
    settings_from_mapping,
)
from ledgerflow.errors import ConfigError

SECRET = "s3cr3t-Pa55"
SQLITE_DEFAULT = "databases:\n  default: {dialect: sqlite, path: ledger.db}\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config(tmp_path: Path, text: str, name: str = "ledgerflow.yml") -> Path:
    return write(tmp_path / name, text)


def load_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ or {})
    return str(info.value)


# -- discovery ---------------------------------------------------------------------------


def test_find_explicit_path(tmp_path: Path) -> None:
    path = config(tmp_path, SQLITE_DEFAULT, name="custom.yml")
    assert find_config(path, environ={}) == path
    assert find_config("custom.yml", cwd=tmp_path, environ={}) == path


def test_find_explicit_directory(tmp_path: Path) -> None:
    path = config(tmp_path, SQLITE_DEFAULT)
    assert find_config(tmp_path, environ={}) == path


def test_find_explicit_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config(tmp_path / "nope.yml", environ={})
    assert "nope.yml" in str(info.value)
    assert "ledgerflow init" in str(info.value)
    assert info.value.exit_code == 3


def test_find_explicit_beats_env(tmp_path: Path) -> None:
    explicit = config(tmp_path, SQLITE_DEFAULT, name="a.yml")
    other = config(tmp_path, SQLITE_DEFAULT, name="b.yml")
    assert find_config(explicit, environ={"LEDGERFLOW_CONFIG": str(other)}) == explicit


def test_find_from_env(tmp_path: Path) -> None:
    path = config(tmp_path / "conf", SQLITE_DEFAULT, name="lf.yml")
    found = find_config(cwd=tmp_path, environ={"LEDGERFLOW_CONFIG": str(path)})
    assert found == path


def test_find_env_missing_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config(cwd=tmp_path, environ={"LEDGERFLOW_CONFIG": str(tmp_path / "gone.yml")})
    assert "gone.yml" in str(info.value)
    assert "LEDGERFLOW_CONFIG" in str(info.value)


def test_find_walks_up_from_nested_dir(tmp_path: Path) -> None:
    path = config(tmp_path, SQLITE_DEFAULT)
    nested = tmp_path / "a" / "b" / "c"
    nested.mkdir(parents=True)
    assert find_config(cwd=nested, environ={}) == path


def test_find_accepts_yaml_extension(tmp_path: Path) -> None:
    path = config(tmp_path, SQLITE_DEFAULT, name="ledgerflow.yaml")
    nested = tmp_path / "sub"
    nested.mkdir()
    assert find_config(cwd=nested, environ={}) == path


def test_find_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config(cwd=tmp_path, environ={})
    message = str(info.value)
    assert str(tmp_path) in message
    assert "ledgerflow.yml" in message
    assert info.value.hint == "run `ledgerflow init` or pass --config"


def test_load_settings_discovers_from_cwd(tmp_path: Path) -> None:
    path = config(tmp_path, SQLITE_DEFAULT)
    (tmp_path / "deep").mkdir()
    settings = load_settings(cwd=tmp_path / "deep", environ={})
    assert settings.path == path
    assert settings.root == tmp_path


# -- includes ----------------------------------------------------------------------------


def test_include_relative_to_including_file_and_nested(tmp_path: Path) -> None:
    main = config(
        tmp_path,
        """\
        databases:
          default: {dialect: sqlite, path: ledger.db}
          catalog: !include databases/catalog.yml
        """,
    )
    write(
        tmp_path / "databases" / "catalog.yml",
        """\
        dialect: postgresql
        address: db.example.org:6543
        database: catalog
        admin: !include creds/admin.yml
        """,
    )
    write(tmp_path / "databases" / "creds" / "admin.yml", "{name: owner, password: pw}\n")
    settings = load_settings(main, environ={})
    catalog = settings.databases["catalog"]
    assert catalog.admin == Credentials("owner", "pw")
    assert catalog.source == str(tmp_path / "databases" / "catalog.yml")
    assert settings.default.source == str(main)


def test_error_inside_include_names_included_file(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "  catalog: !include cat.yml\n")
    write(tmp_path / "cat.yml", "dialect: sqlite\npath: c.db\naddress: x\n")
    message = load_error(main)
    assert "cat.yml: databases.catalog.address: unknown key" in message


def test_include_missing(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "  catalog: !include sub/a.yml\n")
    write(tmp_path / "sub" / "a.yml", "dialect: !include missing.yml\n")
    message = load_error(main)
    assert f"{tmp_path / 'sub' / 'a.yml'}:1:10" in message
    assert str(tmp_path / "sub" / "missing.yml") in message
    assert f"{main} -> {tmp_path / 'sub' / 'a.yml'}" in message


def test_include_loop(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "  catalog: !include a.yml\n")
    write(tmp_path / "a.yml", "dialect: !include b.yml\n")
    write(tmp_path / "b.yml", "!include a.yml\n")
    message = load_error(main)
    assert "include loop" in message
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    assert f"{main} -> {a} -> {b} -> {a}" in message


def test_include_of_itself_is_a_loop(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "plugins: !include ledgerflow.yml\n")
    assert "include loop" in load_error(main)


def test_malformed_yaml_has_line_and_column_and_no_secret(tmp_path: Path) -> None:
    main = config(
        tmp_path,
        f"""\
        databases:
          default: {{dialect: sqlite, path: ledger.db}}
          pg: {{dialect: postgresql, admin: "bob:{SECRET}
        """,
    )
    message = load_error(main)
    assert f"{main}:" in message
    assert "invalid YAML" in message
    assert SECRET not in message


def test_malformed_yaml_line_column(tmp_path: Path) -> None:
    main = config(tmp_path, "databases:\n  default: [1, 2\n  other: x\n")
    message = load_error(main)
    assert message.startswith(f"{main}:3:")


def test_duplicate_key(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "auto_migrate: true\nauto_migrate: false\n")
    assert f"{main}:4:1: duplicate key 'auto_migrate'" in load_error(main)


# -- interpolation -----------------------------------------------------------------------

PG = """\
databases:
  default: {dialect: sqlite, path: ledger.db}
  catalog:
    dialect: postgresql
    address: ${PG_HOST:-localhost}
    database: catalog
    admin: ${PG_ADMIN}
    user: pipeuser:${PG_PASS}
"""


def test_interpolation_whole_inside_and_default(tmp_path: Path) -> None:
    main = config(tmp_path, PG)
    env = {"PG_ADMIN": "owner:adm1n", "PG_PASS": SECRET}
    catalog = load_settings(main, environ=env).databases["catalog"]
    assert catalog.host == "localhost"
    assert catalog.admin == Credentials("owner", "adm1n")
    assert catalog.user == Credentials("pipeuser", SECRET)


def test_interpolation_default_applies_to_empty_value(tmp_path: Path) -> None:
    main = config(tmp_path, PG)
    env = {"PG_ADMIN": "owner", "PG_PASS": "x", "PG_HOST": ""}
    assert load_settings(main, environ=env).databases["catalog"].host == "localhost"


def test_interpolation_unset_names_file_key_and_variable(tmp_path: Path) -> None:
    main = config(tmp_path, PG)
    message = load_error(main, {"PG_PASS": SECRET})
    assert f"{main}: databases.catalog.admin: environment variable PG_ADMIN is not set" in message
    assert SECRET not in message


def test_interpolation_escape_and_lists(tmp_path: Path) -> None:
    main = config(
        tmp_path,
        SQLITE_DEFAULT
        + "plugins: ['pkg.${MOD}']\n"
        + "executor: {kind: threads, options: {x: a$$b}}\n",
    )
    settings = load_settings(main, environ={"MOD": "tasks"})
    assert settings.plugins == ("pkg.tasks",)
    assert settings.executor.options == {"x": "a$b"}


def test_interpolated_numbers_and_booleans(tmp_path: Path) -> None:
    main = config(
        tmp_path,
        SQLITE_DEFAULT + "executor: {kind: threads, workers: '${N:-4}'}\nauto_migrate: ${AUTO}\n",
    )
    settings = load_settings(main, environ={"AUTO": "true"})
    assert settings.executor.workers == 4
    assert settings.auto_migrate is True
    assert type(settings.redacted["executor"]["kind"]) is str


def test_interpolation_unterminated(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "values: {store: '${OOPS'}\n")
    message = load_error(main)
    assert f"{main}: values.store: unterminated" in message


def test_interpolation_keeps_input_mapping_untouched() -> None:
    data = {"databases": {"default": {"dialect": "sqlite", "path": "${P}"}}}
    settings = settings_from_mapping(data, path=Path("/proj/ledgerflow.yml"), environ={"P": "x.db"})
    assert settings.default.path == Path("/proj/x.db")
    assert data["databases"]["default"]["path"] == "${P}"


# -- validation --------------------------------------------------------------------------

ERRORS = [
    ("- a\n", "expected a mapping at the top level, got list"),
    (SQLITE_DEFAULT + "1: x\n", "expected string keys, got a key of type integer"),
    (SQLITE_DEFAULT + "databses: {}\n", "databses: unknown key, allowed keys: databases"),
    ("plugins: []\n", "databases: required key is missing"),
    ("databases: [x]\n", "databases: expected a mapping, got list"),
    ("databases: {other: {dialect: sqlite, path: a.db}}\n", "databases: no 'default' database"),
    ("databases: {default: {path: a.db}}\n", "databases.default.dialect: required key"),
    ("databases: {default: {dialect: mysql}}\n", "databases.default.dialect: unknown dialect"),
    ("databases: {default: {dialect: sqlite}}\n", "databases.default.path: required key"),
    (
        "databases: {default: {dialect: sqlite, path: a.db, address: h}}\n",
        "databases.default.address: unknown key, allowed keys: dialect, path",
    ),
    (
        "databases: {default: {dialect: sqlite, path: 3}}\n",
        "databases.default.path: expected a path, got integer",
    ),
    (
        SQLITE_DEFAULT + "  my-db: {dialect: sqlite, path: b.db}\n",
        "databases.my-db: database names must be identifiers",
    ),
    (
        SQLITE_DEFAULT + "  pg: {dialect: postgresql, database: d, user: u}\n",
        "databases.pg.address: required key is missing",
    ),
    (
        SQLITE_DEFAULT + "  pg: {dialect: postgresql, address: 'h:abc', database: d, user: u}\n",
        "databases.pg.address: expected 'host[:port]' with a port from 1 to 65535",
    ),
    (
        SQLITE_DEFAULT + "  pg: {dialect: postgresql, address: 'h:70000', database: d, user: u}\n",
        "databases.pg.address: expected 'host[:port]'",
    ),
    (
        SQLITE_DEFAULT + "  pg: {dialect: postgresql, address: h, user: u}\n",
        "databases.pg.database: required key is missing",
    ),
    (
        SQLITE_DEFAULT + "  pg: {dialect: postgresql, address: h, database: d}\n",
        "databases.pg: expected 'admin' or 'user' credentials",
    ),
    (
        SQLITE_DEFAULT + "  pg: {dialect: postgresql, address: h, database: d, user: [u]}\n",
        "databases.pg.user: expected 'name:password', 'name' or a mapping",
    ),
    (
        SQLITE_DEFAULT
        + "  pg: {dialect: postgresql, address: h, database: d, user: {name: u, pass: x}}\n",
        "databases.pg.user.pass: unknown key, allowed keys: name, password",
    ),
    (
        SQLITE_DEFAULT
        + "  pg: {dialect: postgresql, address: h, database: d, user: u, options: {a: [1]}}\n",
        "databases.pg.options.a: expected a string, got list",
    ),
    (SQLITE_DEFAULT + "plugins: pkg.mod\n", "plugins: expected a list of module names, got string"),
    (SQLITE_DEFAULT + "plugins: [ok.mod, 'bad-mod']\n", "plugins[1]: expected a dotted module"),
    (SQLITE_DEFAULT + "plugins: [3]\n", "plugins[0]: expected a dotted module name, got integer"),
    (SQLITE_DEFAULT + "executor: local\n", "executor: expected a mapping, got string"),
    (SQLITE_DEFAULT + "executor: {kind: slurm}\n", "executor.kind: unknown kind 'slurm'"),
    (SQLITE_DEFAULT + "executor: {workers: 0}\n", "executor.workers: expected an integer >= 1"),
    (SQLITE_DEFAULT + "executor: {workers: true}\n", "executor.workers: expected an integer >= 1"),
    (SQLITE_DEFAULT + "executor: {address: 'h:1'}\n",
     "executor.address: 'address' is a setting of the dask executor, not of 'local'"),
    (SQLITE_DEFAULT + "executor: {kind: dask, address: 'h:1'}\n",
     "executor.address: expected a scheduler address like 'tcp://host:8786'"),
    (SQLITE_DEFAULT + "executor: {kind: dask, cluster: {kind: slurm, cores: 2}}\n",
     "executor.cluster.memory: required key is missing"),
    (SQLITE_DEFAULT + "executor: {kind: dask, threads_per_worker: 0}\n",
     "executor.threads_per_worker: expected an integer >= 1"),
    (SQLITE_DEFAULT + "executor: {options: 3}\n", "executor.options: expected a mapping, got"),
    (SQLITE_DEFAULT + "executor: {kinds: dask}\n", "executor.kinds: unknown key"),
    (SQLITE_DEFAULT + "values: {inline_max_bytes: -1}\n", "values.inline_max_bytes: expected"),
    (SQLITE_DEFAULT + "values: {store: [a]}\n", "values.store: expected a path, got list"),
    (SQLITE_DEFAULT + "cache: {file_hash: md5}\n", "cache.file_hash: unknown file_hash 'md5'"),
    (SQLITE_DEFAULT + "auto_migrate: 'yes'\n", "auto_migrate: expected a boolean"),
    (SQLITE_DEFAULT + "auto_migrate: ${FLAG}\n", "auto_migrate: expected a boolean"),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_validation_errors_name_file_and_key_path(tmp_path: Path, text: str, expected: str) -> None:
    main = config(tmp_path, text)
    message = load_error(main, {"FLAG": "maybe"})
    assert f"{main}: {expected}" in message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (SQLITE_DEFAULT + "databses: {}\n", "did you mean 'databases'?"),
        (SQLITE_DEFAULT + "executor: {knd: local}\n", "did you mean 'kind'?"),
        ("databases: {default: {dialect: postgres}}\n", "did you mean 'postgresql'?"),
    ],
)
def test_suggests_closest_name(tmp_path: Path, text: str, hint: str) -> None:
    main = config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(main, environ={})
    assert info.value.hint == hint
    assert hint in str(info.value)


def test_unknown_dialect_lists_allowed(tmp_path: Path) -> None:
    main = config(tmp_path, "databases: {default: {dialect: oracle}}\n")
    assert "expected one of: sqlite, postgresql" in load_error(main)


def test_wrong_type_message_format(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "values: {inline_max_bytes: lots}\n")
    expected = f"{main}: values.inline_max_bytes: expected an integer >= 0, got string"
    assert load_error(main) == expected


# -- effective values --------------------------------------------------------------------


def test_sqlite_path_relative_to_config_dir(tmp_path: Path) -> None:
    main = config(
        tmp_path / "proj",
        """\
        databases:
          default: {dialect: sqlite, path: data/ledger.db}
          scratch: {dialect: sqlite, path: ':memory:'}
          abs: {dialect: sqlite, path: /var/x.db}
        values: {store: ../blobs}
        """,
    )
    settings = load_settings(main, environ={})
    assert settings.default.path == tmp_path / "proj" / "data" / "ledger.db"
    assert settings.databases["scratch"].path == Path(":memory:")
    assert settings.databases["abs"].path == Path("/var/x.db")
    assert settings.values.store == tmp_path / "blobs"


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, SQLITE_DEFAULT), environ={})
    assert settings.plugins == ()
    assert settings.executor.kind == "local"
    assert settings.values.inline_max_bytes == 1_048_576
    assert settings.values.store == tmp_path / ".ledgerflow" / "values"
    assert settings.cache.file_hash == "content"
    assert settings.logs.max_bytes == 1_048_576 and settings.logs.echo is True
    assert settings.auto_migrate is False


def test_logs_section(tmp_path: Path) -> None:
    path = config(tmp_path, SQLITE_DEFAULT + "logs: {max_bytes: 5000, echo: false}\n")
    settings = load_settings(path, environ={})
    assert (settings.logs.max_bytes, settings.logs.echo) == (5000, False)
    assert settings.redacted["logs"] == {"max_bytes": 5000, "echo": False}
    for bad, expected in (
        ("{max_bytes: -1}", "logs.max_bytes"),
        ("{echo: maybe}", "logs.echo"),
        ("{max_byte: 10}", "did you mean 'max_bytes'"),
    ):
        path = config(tmp_path, SQLITE_DEFAULT + f"logs: {bad}\n")
        assert expected in load_error(path)


def test_settings_from_mapping_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = {"databases": {"default": {"dialect": "sqlite", "path": "l.db"}}}
    settings = settings_from_mapping(data, environ={})
    assert settings.path is None
    assert settings.default.path == tmp_path / "l.db"
    assert settings.default.source == "<settings>"


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("db.example.org", "db.example.org", 5432),
        ("localhost:6543", "localhost", 6543),
        ("[::1]:5433", "::1", 5433),
        ("[::1]", "::1", 5432),
    ],
)
def test_postgres_address(address: str, host: str, port: int) -> None:
    entry = {"dialect": "postgresql", "address": address, "database": "d", "user": "u"}
    data = {"databases": {"default": entry}}
    db = settings_from_mapping(data, environ={}).default
    assert (db.host, db.port, db.database) == (host, port, "d")
    assert db.describe() == f"postgresql://{host}:{port}/d"
    assert db.admin is None
    assert db.credentials("user") == Credentials("u")


def test_postgres_options_and_credentials_mapping() -> None:
    entry = {
        "dialect": "postgresql",
        "address": "h",
        "database": "d",
        "admin": {"name": "owner", "password": SECRET},
        "options": {"sslmode": "require", "connect_timeout": 10},
    }
    db = settings_from_mapping({"databases": {"default": entry}}, environ={}).default
    assert db.admin == Credentials("owner", SECRET)
    assert db.options == {"sslmode": "require", "connect_timeout": "10"}
    assert db.credentials("user") == db.admin


# -- redaction ---------------------------------------------------------------------------


def _pg_settings(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    main = config(
        tmp_path,
        PG + "    options: {sslmode: require, password: opt-" + SECRET + "}\n",
    )
    return main, {"PG_ADMIN": f"owner:adm-{SECRET}", "PG_PASS": SECRET}


def test_redacted_settings_hide_passwords(tmp_path: Path) -> None:
    main, env = _pg_settings(tmp_path)
    settings = load_settings(main, environ=env)
    dumped = settings.redacted_yaml()
    assert SECRET not in dumped
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.databases["catalog"].user)
    assert SECRET not in repr(settings.databases["catalog"])
    assert settings.databases["catalog"].options["password"] == f"opt-{SECRET}"
    catalog = yaml.safe_load(dumped)["databases"]["catalog"]
    assert catalog["admin"] == "owner:***"
    assert catalog["user"] == "pipeuser:***"
    assert catalog["options"] == {"sslmode": "require", "password": "***"}
    assert catalog["address"] == "localhost:5432"
    assert yaml.safe_load(dumped)["databases"]["default"]["path"] == str(tmp_path / "ledger.db")
    assert len(settings.hash) == 40  # a ledgerflow.hashing digest


def test_hash_does_not_depend_on_password(tmp_path: Path) -> None:
    main, env = _pg_settings(tmp_path)
    first = load_settings(main, environ=env).hash
    second = load_settings(main, environ={**env, "PG_PASS": "other"}).hash
    assert first == second


def test_executor_option_secrets_masked(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "executor: {options: {token: '${TOK}', n: 2}}\n")
    settings = load_settings(main, environ={"TOK": SECRET})
    assert settings.executor.options == {"token": SECRET, "n": 2}
    assert SECRET not in repr(settings)
    assert SECRET not in settings.redacted_yaml()


def test_credentials_str_and_repr() -> None:
    creds = Credentials.parse(f"bob:{SECRET}")
    assert str(creds) == "bob:***"
    assert SECRET not in repr(creds)
    assert str(Credentials.parse("bob")) == "bob"


def test_redact_generic_mapping() -> None:
    data = {
        "user": f"bob:{SECRET}",
        "nested": {"api_token": SECRET, "client_secret": SECRET, "Password": 1234, "ok": "x"},
        "dsn": f"postgresql://bob:{SECRET}@host/db",
        "items": ({"token": SECRET},),
        "where": Path("/a/b"),
    }
    result = redact(data)
    assert SECRET not in yaml.safe_dump(result)
    assert result["nested"] == {
        "api_token": "***",
        "client_secret": "***",
        "Password": "***",
        "ok": "x",
    }
    assert result["dsn"] == "postgresql://bob:***@host/db"
    assert result["user"] == "bob:***"
    assert result["where"] == "/a/b"
    assert data["user"] == f"bob:{SECRET}"


def test_error_elsewhere_does_not_show_password(tmp_path: Path) -> None:
    main, env = _pg_settings(tmp_path)
    text = main.read_text() + "executor: {workers: many}\n"
    main.write_text(text)
    message = load_error(main, env)
    assert "executor.workers" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "credentials",
    [
        "{name: owner, password: 987654321}",
        "{name: owner, password: [s3cr3t-Pa55]}",
        "{password: s3cr3t-Pa55}",
        "':s3cr3t-Pa55'",
    ],
)
def test_bad_credentials_do_not_show_password(tmp_path: Path, credentials: str) -> None:
    main = config(
        tmp_path,
        SQLITE_DEFAULT
        + f"  pg: {{dialect: postgresql, address: h, database: d, admin: {credentials}}}\n",
    )
    message = load_error(main)
    assert "databases.pg.admin" in message
    assert SECRET not in message
    assert "987654321" not in message


def test_bad_address_does_not_echo_it(tmp_path: Path) -> None:
    main = config(
        tmp_path,
        SQLITE_DEFAULT
        + f"  pg: {{dialect: postgresql, address: 'bob:{SECRET}@h', database: d, user: u}}\n",
    )
    message = load_error(main)
    assert "databases.pg.address" in message
    assert SECRET not in message


def test_settings_from_mapping_accepts_path_objects(tmp_path: Path) -> None:
    data = {
        "databases": {"default": {"dialect": "sqlite", "path": tmp_path / "x.db"}},
        "values": {"store": Path("blobs")},
    }
    settings = settings_from_mapping(data, path=tmp_path / "ledgerflow.yml", environ={})
    assert settings.default.path == tmp_path / "x.db"
    assert settings.values.store == tmp_path / "blobs"
    assert yaml.safe_load(settings.redacted_yaml())["values"]["store"] == str(tmp_path / "blobs")


def test_postgres_unix_socket_and_ipv6_redacted_address() -> None:
    socket = {"dialect": "postgresql", "address": "/var/run/postgresql", "database": "d"}
    ipv6 = {"dialect": "postgresql", "address": "[::1]:6000", "database": "d", "user": "u"}
    data = {"databases": {"default": {**socket, "admin": "a"}, "v6": ipv6}}
    settings = settings_from_mapping(data, environ={})
    assert (settings.default.host, settings.default.port) == ("/var/run/postgresql", 5432)
    assert settings.redacted["databases"]["v6"]["address"] == "[::1]:6000"


def test_null_required_value(tmp_path: Path) -> None:
    main = config(tmp_path, "databases:\n  default: {dialect: sqlite, path: null}\n")
    assert f"{main}: databases.default.path: expected a value, got null" in load_error(main)


def test_error_in_included_list_names_included_file(tmp_path: Path) -> None:
    main = config(tmp_path, SQLITE_DEFAULT + "plugins: !include plugins.yml\n")
    write(tmp_path / "plugins.yml", "- good.mod\n- 'bad mod'\n")
    assert f"{tmp_path / 'plugins.yml'}: plugins[1]: expected a dotted" in load_error(main)
