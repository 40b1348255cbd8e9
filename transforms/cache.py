"""Data the stages build once and keep in the user's cache directory (the
gazetteer, the language profiles' matrix): building them takes longer than
loading them, and every worker process would build them again.

A cached file is named by a hash of everything its build reads (data files,
library versions, the code that builds it), so a change to any of them makes a
new file and an old one is never read by mistake. Files are written atomically
(a reader never sees half a file); a cache that cannot be written is skipped.

Old files are removed: reading a cache marks it used (its modification time),
and writing one removes the caches of the same name whose files have all gone
unused for STALE_AFTER_DAYS. Another configuration's cache (a run with its own
``--tag-data-dir``) stays as long as it is in use.
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Optional, TypeVar

T = TypeVar("T")

STALE_AFTER_DAYS = 30
_HASH_CHARS = 32


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wirestream"


def cache_path(name: str, parts: Iterable[bytes], suffix: str) -> Path:
    """``name-<hash of parts and the Python version><suffix>`` in the cache directory."""
    digest = hashlib.sha256()
    for part in (sys.version.encode(), *parts):
        digest.update(len(part).to_bytes(8, "big") + part)
    return cache_dir() / f"{name}-{digest.hexdigest()[:_HASH_CHARS]}{suffix}"


def _stem(path: Path) -> str:
    """``name-<hash>``: what a cache's files (and their temporaries) share."""
    return path.name.split(".", 1)[0]


def remove_stale(kept: Path) -> list[Path]:
    """Removes the files of the caches named as ``kept`` is (other hashes) none of
    whose files was written or read in STALE_AFTER_DAYS; returns them."""
    name = _stem(kept)[:-(_HASH_CHARS + 1)]
    by_stem: dict[str, list[tuple[Path, float]]] = {}
    try:
        for path in kept.parent.glob(f"{name}-*"):
            stem = _stem(path)
            if stem != _stem(kept) and len(stem) == len(name) + 1 + _HASH_CHARS:
                by_stem.setdefault(stem, []).append((path, path.stat().st_mtime))
    except OSError:
        return []
    cutoff = time.time() - STALE_AFTER_DAYS * 86_400
    removed = []
    for files in by_stem.values():
        if all(mtime < cutoff for _, mtime in files):
            for path, _ in files:
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass
    return removed


def write_cached(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as f:
            write(f)
        os.replace(f.name, path)
        remove_stale(path)
    except OSError:
        try:
            os.unlink(f.name)
        except (OSError, UnboundLocalError):
            pass


def write_pickle(path: Path, value) -> None:
    write_cached(path, lambda f: pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL))


def mark_used(path: Path) -> None:
    """Marks a cache file read now: a cache none of whose files was read or written
    in STALE_AFTER_DAYS is removed."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache is still read
        pass


def read_pickle(path: Path, kind: type[T]) -> Optional[T]:
    """The pickled value if the file holds one of ``kind``, else None (build anew)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    collecting = gc.isenabled()
    gc.disable()  # unpickling makes many objects: collecting in between would triple its time
    try:
        value = pickle.loads(data)
    except Exception:  # noqa: BLE001 - truncated, corrupt or from another version: build anew
        return None
    else:
        mark_used(path)
    finally:
        if collecting:
            # They live as long as the process: kept out of later collections, which
            # would otherwise walk them all once more.
            gc.freeze()
            gc.enable()
    return value if isinstance(value, kind) else None
