"""Bytes that wait in local files while a bounded run in one process goes on.

A run whose every process shares one file system (the command and its forked
workers) keeps what would otherwise be copied from step to step by Beam
(rendered lines, the stories' sketches) in files of a temporary directory,
and lets Beam carry only where they are: (file, offset, length).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from typing import IO, Iterator

# Each process appends what it spills to one file of its own (by process id: a forked
# child never writes through its parent's handle, whose position it would not know).
_SPILLS: dict[tuple[str, int], IO[bytes]] = {}
_SPILLS_LOCK = threading.Lock()


def spilled(directory: str, data: bytes) -> tuple[str, int]:
    """Appends ``data`` to this process's file in ``directory``: (that file, the offset ``data`` starts at)."""
    with _SPILLS_LOCK:
        handle = _SPILLS.get((directory, os.getpid()))
        if handle is None:
            handle = _SPILLS[directory, os.getpid()] = open(os.path.join(directory, f"{os.getpid()}.spill"), "ab")
        offset = handle.tell()
        handle.write(data)
        handle.flush()  # read by another process once Beam carries where it is
        return handle.name, offset


def read_spilled(path: str, offset: int, length: int, what: str = "spilled data") -> bytes:
    """What ``spilled`` wrote there; a file cut short (a full disk, a file removed
    under the run) is an OSError that says what was lost."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    if len(data) != length:
        raise OSError(f"{path}: {length} bytes of {what} expected at {offset}, {len(data)} found")
    return data


@contextlib.contextmanager
def spill_directory() -> Iterator[str]:
    """A temporary directory for a bounded run's spills, removed with all that was
    spilled there once the run is over, whether it succeeded or failed."""
    directory = tempfile.mkdtemp(prefix="wirestream-spill-")
    try:
        yield directory
    finally:
        with _SPILLS_LOCK:
            for key in [key for key in _SPILLS if key[0] == directory]:
                _SPILLS.pop(key).close()
        shutil.rmtree(directory, ignore_errors=True)
