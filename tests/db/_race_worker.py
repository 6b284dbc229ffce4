"""A process that calls get_or_create on shared keys (imported by spawned test workers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ledgerflow.config import settings_from_mapping
from ledgerflow.db import Database, Model, get_or_create


def define_token_model() -> type[Model]:
    class Token(Model):
        id: Mapped[int] = mapped_column(primary_key=True)
        key: Mapped[int] = mapped_column(unique=True)
        owner: Mapped[str] = mapped_column(String(20))

    return Token


def race(entry: dict[str, Any], root: str, keys: int, barrier: Any, results: Any) -> None:
    """get_or_create every key in order, all workers together; report the keys created."""
    token = define_token_model()
    settings = settings_from_mapping({"databases": {"default": entry}}, path=Path(root) / "x.yml")
    created: list[int] = []
    try:
        with Database(settings) as db:
            db.check_connection()
            for key in range(keys):
                barrier.wait(timeout=120)  # every worker goes for this key at the same time
                with db.transaction() as session:
                    obj, was_created = get_or_create(
                        session, token, {"key": key}, {"owner": str(os.getpid())}
                    )
                    assert obj.key == key and obj.id is not None
                if was_created:
                    created.append(key)
    except BaseException as exc:
        barrier.abort()  # the others stop waiting for this worker
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    results.put(("ok", created))
