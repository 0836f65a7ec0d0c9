"""Atomic writes: every file the toolkit writes goes to a temporary name beside its target and is renamed into
place, so a kill at any moment leaves the old file or the new one, never half of one. CSV tables are written and
upserted here too (rows of a run replace the rows with the same keys; other rows are kept)."""
from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

log = logging.getLogger("prune")

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files (and some writers, safetensors among them, replace the file with another
        # 0600 one): a result should read like any other file the user writes
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def upsert_csv(path: Path, new: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Write `new` into the table at `path`: its rows replace those with the same `keys`, other rows are kept (a
    run over a few configurations does not erase the others). Returns the table written, sorted by `keys`."""
    if path.is_file():
        try:
            old = pd.read_csv(path)
            if set(keys) <= set(old.columns) and not old.empty:
                new = pd.concat([old, new], ignore_index=True).drop_duplicates(keys, keep="last")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
            log.warning("rewriting unreadable %s (%s)", path, err)
    table = new.sort_values(keys).reset_index(drop=True)
    write_csv(table, path)
    return table
