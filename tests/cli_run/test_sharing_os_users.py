"""Two operating-system users, each with a checkout only they can read, on one ledger.

The test makes two throwaway accounts (and a group for them), gives each a checkout
directory of mode 0700 and runs ``ledgerflow run`` as each of them, as two teammates on one
machine would. It needs root (to create the accounts and switch to them) and ``useradd``;
without them it is skipped.

- On PostgreSQL, with the same user role: B's first run after A's is all cache hits,
  pickles and the large value (in the ledger's own chunks) included, and B never reads A's
  directory.
- On one SQLite file in a group-writable folder: the writer of a row is the OS user, so by
  default B does not load A's pickles (it computes those calls again, with a note) while
  plain values are hits; with A in ``cache.trust`` every pickle is a hit too.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from ledgerflow.testing.databases import copy_sqlite
from ledgerflow.testing.plugin import ci_enabled

#: Values above this many bytes leave their ``lf_value`` row (for the value store).
INLINE_MAX = 4096
#: One line of ``data/input.txt``, the file every checkout holds a copy of.
INPUT_LINE = "alpha,beta,gamma\n"

PIPELINE = textwrap.dedent(
    '''
    import getpass
    import os
    import uuid
    from dataclasses import dataclass
    from pathlib import Path

    from ledgerflow import File, task


    def executed(name: str) -> None:
        """Leave a mark per execution in the folder every user may write."""
        folder = os.environ["LF_EXECUTIONS"]
        Path(folder, f"{getpass.getuser()}.{name}.{uuid.uuid4().hex}").touch()


    @dataclass
    class Point:
        x: int
        label: str


    @task
    def square(n: int) -> int:
        executed("square")
        return n * n


    @task
    def point(n: int) -> Point:
        executed("point")
        return Point(n, f"p{n}")


    @task
    def blob(repeat: int) -> bytes:
        executed("blob")
        return bytes(range(256)) * repeat


    @task
    def data_file() -> File:
        executed("data_file")
        return File("data/input.txt")


    @task
    def count_fields(source: File) -> int:
        executed("count_fields")
        return len(Path(source).read_text().strip().split(","))


    @task
    def main(n: int = 4, repeat: int = 256) -> list:  # blob: 64 KiB, over inline_max_bytes
        executed("main")
        source = data_file()
        return [
            [square(i) for i in range(n)],
            [point(i) for i in range(n)],
            blob(repeat),
            source,
            count_fields(source),
        ]
    '''
)
#: Calls of one run of ``main`` (n=4): main, 4 squares, 4 points, blob, data_file, count_fields.
CALLS = 1 + 4 + 4 + 1 + 1 + 1
PICKLED_CALLS = 4  # the points


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Team:
    """Two throwaway accounts in one throwaway group, and a folder for the test's files."""

    a: Account
    b: Account
    group: str
    gid: int
    root: Path  # mode 0755, owned by root; a folder per test in it
    python: list[str]  # how either account starts ``ledgerflow`` (this Python's packages)
    executions: Path = Path()  # mode 1777: each execution of a task leaves a file here


def _skip_or_fail(reason: str) -> None:
    if ci_enabled() and os.geteuid() == 0:
        pytest.fail(f"the OS-users sharing test must run as root under CI=true: {reason}")
    pytest.skip(reason)


def _as(account: Account, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``account`` (its uid, its group and the team group, nothing else)."""
    command = [
        "setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups",
        "--inh-caps=-all", "--", *argv,
    ]  # fmt: skip
    env = kwargs.pop("env", None) or _env(account)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, **kwargs)


def _env(account: Account, home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGERFLOW_", "PYTHON"))}
    env.update(USER=account.name, LOGNAME=account.name, HOME=str(home or "/"))
    return env


def _interpreters() -> Iterator[list[str]]:
    """Ways to start ``ledgerflow`` under this Python as another user: this interpreter,
    else (when it lives where others cannot reach, like root's home) the system's Python of
    the same version with this environment's packages, and none of the system's own."""
    yield [sys.executable, "-m", "ledgerflow"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    dirs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    code = (
        f"import site; [site.addsitedir(d) for d in {dirs!r}]; import runpy; "
        "runpy.run_module('ledgerflow', run_name='__main__', alter_sys=True)"
    )
    for base in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if os.path.exists(base):
            yield [base, "-I", "-S", "-c", code]


def _python_for(account: Account) -> list[str] | None:
    """The first of :func:`_interpreters` that runs ledgerflow as ``account``."""
    for argv in _interpreters():
        try:
            proc = _as(account, [*argv, "--version"], cwd="/")
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.returncode == 0:
            return argv
    return None


@pytest.fixture(scope="session")
def team() -> Iterator[Team]:
    """Two OS users and their group, removed at the end of the session (also on failure)."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("needs root, to create two operating-system users")
    missing = [tool for tool in ("useradd", "userdel", "groupadd", "groupdel", "setpriv")
               if shutil.which(tool) is None]  # fmt: skip
    if missing:
        pytest.skip(f"needs {', '.join(missing)} to create and switch to two users")
    token = uuid.uuid4().hex[:8]
    group = f"lfteam{token}"
    names = [f"lfa{token}", f"lfb{token}"]
    made: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="lf-osusers-"))
    try:
        subprocess.run(["groupadd", group], check=True, capture_output=True)
        made.append("group")
        accounts = []
        for name in names:
            # No home, no login shell; the team group is a supplementary one, so a file's
            # group comes from the folder (set-group-ID), as in a shared folder.
            subprocess.run(
                ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group",
                 "--groups", group, name],
                check=True, capture_output=True,
            )  # fmt: skip
            made.append(name)
            entry = pwd.getpwnam(name)
            accounts.append(Account(name, entry.pw_uid, entry.pw_gid))
        root.chmod(0o755)
        python = _python_for(accounts[0])
        if python is None:
            _skip_or_fail(
                f"no Python with ledgerflow that another user may run ({sys.executable} and "
                "its packages must be readable by others)"
            )
        assert python is not None
        yield Team(accounts[0], accounts[1], group, grp.getgrnam(group).gr_gid, root, python)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for name in reversed(made):
            if name == "group":
                subprocess.run(["groupdel", group], capture_output=True)
            else:
                subprocess.run(["userdel", "--force", name], capture_output=True)


@pytest.fixture
def site(team: Team) -> Iterator[Team]:
    """``team`` with a folder of this test's own (``root``, 0755) and its ``executions``."""
    root = Path(tempfile.mkdtemp(dir=team.root))
    try:
        root.chmod(0o755)
        executions = root / "executions"
        executions.mkdir()
        executions.chmod(0o1777)
        yield replace(team, root=root, executions=executions)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _checkout(team: Team, account: Account, entry: dict[str, Any], **settings: Any) -> Path:
    """A checkout of the pipeline only ``account`` can read (0700), on the ledger ``entry``."""
    root = team.root / f"checkout-{account.name}"
    root.mkdir(mode=0o700)
    (root / "flow.py").write_text(PIPELINE, encoding="utf-8")
    (root / "data").mkdir()
    (root / "data" / "input.txt").write_text(INPUT_LINE, encoding="utf-8")
    _configure(root, entry, **settings)
    for path in [root, *root.rglob("*")]:
        os.chown(path, account.uid, account.gid)
    root.chmod(0o700)
    return root


def _configure(root: Path, entry: dict[str, Any], **settings: Any) -> None:
    config: dict[str, Any] = {"databases": {"default": entry}}
    config["values"] = {"inline_max_bytes": INLINE_MAX, **settings.pop("values", {})}
    config.update(settings)
    (root / "ledgerflow.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


def _run(team: Team, account: Account, root: Path, *options: str) -> dict[str, Any]:
    """``ledgerflow run flow.py:main --json`` as ``account`` in its checkout."""
    env = _env(account, root)
    env["LF_EXECUTIONS"] = str(team.executions)
    argv = [*team.python, "run", "flow.py:main", "--json", *options]
    proc = _as(account, argv, cwd=root, env=env, umask=0o002)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _counts(result: dict[str, Any]) -> dict[str, int]:
    """The run's task-run counts by status, without the zeros."""
    return {status: n for status, n in result["counts"].items() if n}


def _executions(team: Team) -> Counter[tuple[str, str]]:
    """(user, task) of every execution so far; forgets them."""
    seen: Counter[tuple[str, str]] = Counter()
    for path in team.executions.iterdir():
        user, name, _ = path.name.split(".")
        seen[user, name] += 1
        path.unlink()
    return seen


def _cannot_read(team: Team, account: Account, folder: Path) -> bool:
    """Whether ``account`` is refused a listing of ``folder``."""
    proc = _as(account, ["ls", str(folder)], cwd="/")
    return proc.returncode != 0 and "Permission denied" in proc.stderr


def _first_run(team: Team, a: Path) -> dict[str, Any]:
    first = _run(team, team.a, a)
    assert first["status"] == "done", first
    assert first["counts"].get("done") == CALLS and not first["counts"].get("cached"), first
    assert sum(_executions(team).values()) == CALLS
    return first


@pytest.mark.parametrize("database_dialect", ["postgresql"])
def test_two_os_users_share_every_entry_on_postgresql(
    site: Team, migrated_database_entry: dict[str, Any]
) -> None:
    team = site
    entry = dict(migrated_database_entry)
    assert entry["address"].startswith("127.0.0.1:")  # TCP: no socket folder to share
    a = _checkout(team, team.a, entry)  # values.store unset: PostgreSQL's default, the ledger
    b = _checkout(team, team.b, entry)
    assert _cannot_read(team, team.b, a) and _cannot_read(team, team.a, b)

    first = _first_run(team, a)
    second = _run(team, team.b, b)  # the whole pipeline: one cache hit, loaded in full
    assert _counts(second) == {"cached": 1}, second
    assert second["notes"] == [] and second["result"] == first["result"]
    assert _executions(team) == Counter()
    third = _run(team, team.b, b, "--rerun", "main")  # each call under main: A's entries
    assert _counts(third) == {"done": 1, "cached": CALLS - 1}, third
    assert third["notes"] == [] and third["result"] == first["result"]
    assert _executions(team) == Counter({(team.b.name, "main"): 1})

    engine = sa.create_engine(_url(entry))
    try:
        with engine.connect() as conn:
            users = conn.execute(sa.text('SELECT "user", writer FROM lf_run ORDER BY started_at'))
            runs = [tuple(row) for row in users]
            big = conn.execute(sa.text(
                "SELECT v.type_name, v.inline IS NULL, v.size, count(c.seq), "
                "sum(length(c.data)) FROM lf_value v "
                "LEFT JOIN lf_value_chunk c ON c.key = v.store_key WHERE v.size > :limit "
                "GROUP BY v.hash, v.type_name, v.inline, v.size"
            ), {"limit": INLINE_MAX}).all()  # fmt: skip
            query = sa.text("SELECT DISTINCT writer FROM lf_value WHERE format = 'pickle'")
            pickled = conn.execute(query).scalars().all()
    finally:
        engine.dispose()
    role = entry["user"].split(":")[0]
    # Two OS users ran, with one database role: the writer every row records.
    assert runs == [(team.a.name, role), (team.b.name, role), (team.b.name, role)]
    assert pickled == [role]  # the server's writer: the shared role, trusted by both
    # The large value lives in the ledger (chunks), not in a folder of either checkout.
    assert "builtins.bytes" in [row[0] for row in big], big  # the blob (and main's list)
    for _, no_inline, size, chunks, stored in big:
        assert no_inline and chunks >= 1 and stored == size, big
    for root in (a, b):
        assert not (root / ".ledgerflow" / "values").exists()


@pytest.mark.parametrize("database_dialect", ["sqlite"])
def test_two_os_users_on_one_sqlite_file_trust_decides_the_pickles(
    site: Team, migrated_database_entry: dict[str, Any]
) -> None:
    team = site
    shared = team.root / "shared"
    shared.mkdir()
    os.chown(shared, 0, team.gid)
    shared.chmod(0o2770)  # the team's folder: group-writable, new files keep the group
    ledger = shared / "ledger.sqlite"
    copy_sqlite(Path(migrated_database_entry["path"]), ledger)
    os.chown(ledger, 0, team.gid)
    ledger.chmod(0o660)
    entry = {"dialect": "sqlite", "path": str(ledger)}
    store = {"values": {"store": f"file://{shared / 'values'}"}}  # the team's value store
    a = _checkout(team, team.a, entry, **store)
    b = _checkout(team, team.b, entry, **store, cache={"trust": [team.b.name, team.a.name]})
    assert _cannot_read(team, team.b, a)

    first = _first_run(team, a)
    trusting = _run(team, team.b, b, "--rerun", "main")
    assert _counts(trusting) == {"done": 1, "cached": CALLS - 1}, trusting
    assert trusting["notes"] == [] and trusting["result"] == first["result"]
    assert _executions(team) == Counter({(team.b.name, "main"): 1})

    _configure(b, entry, **store)  # cache.trust unset: B's own pickles only
    default = _run(team, team.b, b, "--rerun", "main")
    assert _counts(default) == {"done": 1 + PICKLED_CALLS, "cached": CALLS - 1 - PICKLED_CALLS}
    assert default["result"] == first["result"]
    notes = default["notes"]
    assert len(notes) == PICKLED_CALLS, notes
    assert all(f"pickled by '{team.a.name}', who is not in cache.trust" in n for n in notes)
    assert _executions(team) == Counter(
        {(team.b.name, "main"): 1, (team.b.name, "point"): PICKLED_CALLS}
    )


def _url(entry: dict[str, Any]) -> str:
    name, password = entry["admin"].split(":", 1)
    return f"postgresql+psycopg://{name}:{password}@{entry['address']}/{entry['database']}"
