"""Facts about where a run happens: host, user, the git commit of the working tree."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from ledgerflow.config.settings import os_user as user_name

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def host_name() -> str:
    return socket.gethostname()


__all__ = ["git_commit", "git_work_tree", "host_name", "user_name"]


def _git_dir(directory: Path) -> Path | None:
    dot_git = directory / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # worktree or submodule: "gitdir: <path>"
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            return (directory / text[len("gitdir:") :].strip()).resolve()
    return None


def _read_ref(git_dir: Path, ref: str) -> str | None:
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    for base in (git_dir, common):
        path = base / ref
        if path.is_file():
            sha = path.read_text(encoding="utf-8", errors="replace").strip()
            return sha if _SHA.fullmatch(sha) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _SHA.fullmatch(sha):
                return sha
    return None


def git_commit(start: Path) -> str | None:
    """The commit checked out in the git work tree holding ``start``, read from ``.git``
    (no subprocess); None outside a repository or for an unborn branch."""
    try:
        start = start.resolve()
        for directory in (start, *start.parents):
            git_dir = _git_dir(directory)
            if git_dir is None:
                continue
            head = (git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
            if head.startswith("ref:"):
                return _read_ref(git_dir, head[4:].strip())
            return head if _SHA.fullmatch(head) else None
    except OSError:
        return None
    return None


def git_work_tree(start: Path) -> tuple[Path, str | None, str | None] | None:
    """The top folder of the git work tree holding ``start``, the branch checked out there
    (None when detached) and the URL of its ``origin`` remote without any user name or
    password in it (None without one); None outside a repository."""
    try:
        start = start.resolve()
        for directory in (start, *start.parents):
            git_dir = _git_dir(directory)
            if git_dir is None:
                continue
            head = (git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
            ref = head[4:].strip() if head.startswith("ref:") else ""
            branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
            return directory, branch, _origin(git_dir)
    except OSError:
        return None
    return None


def _origin(git_dir: Path) -> str | None:
    import configparser
    from urllib.parse import urlsplit, urlunsplit

    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(common / "config", encoding="utf-8")
        url = parser.get('remote "origin"', "url", fallback=None)
    except (configparser.Error, UnicodeDecodeError):
        return None
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme and "@" in parts.netloc:  # https://user:token@host/...: keep the host
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts)
