"""Kernels compiled by numba, imported and compiled on a module's first use.

A module marks its kernels (plain Python functions, calling each other by
name) with ``kernel`` of its ``CompiledKernels``; ``compile()`` imports numba
and binds each marked name in the module to its compiled version, so kernels
find each other compiled when numba compiles them, and callers find them as
globals. A process that never runs a kernel never imports numba (about 0.2 s
of start-up): the command of a bounded run, whose workers run the stages. The
machine code is cached beside the module (or in the user's cache), so a
process loads rather than compiles it; with nowhere writable each process compiles.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Callable, Iterator

import numpy as np

# numba looks for scipy's BLAS when it first compiles or loads a kernel.
_SCIPY_BLAS = "scipy.linalg.cython_blas"


@contextlib.contextmanager
def without_blas() -> Iterator[None]:
    """Kernels first compiled (or loaded) in here leave scipy unimported: numba's
    search for a BLAS imports scipy.linalg wherever scipy is installed, 0.2 s of a
    forked run's start that its workers wait for. Our kernels use no BLAS; numba
    then supports no ``np.dot`` and the like in this process, so only a process
    that runs nothing but our stages (a run's worker nursery) should use this."""
    if _SCIPY_BLAS in sys.modules:
        yield
        return
    sys.modules[_SCIPY_BLAS] = None  # makes the import fail: numba then has no BLAS
    try:
        yield
    finally:
        if sys.modules.get(_SCIPY_BLAS, ...) is None:
            del sys.modules[_SCIPY_BLAS]  # later imports of scipy work as ever


class CompiledKernels:
    def __init__(self, namespace: dict):
        self._namespace = namespace  # the module's globals()
        self._functions: list[Callable] = []
        self._lock = threading.Lock()
        self.compiled = False

    def kernel(self, fn: Callable) -> Callable:
        self._functions.append(fn)
        return fn

    def compile(self) -> None:
        with self._lock:
            if self.compiled:
                return
            import numba
            for fn in self._functions:
                try:
                    compiled = numba.njit(cache=True, nogil=True)(fn)
                except RuntimeError:  # nowhere writable for the cache
                    compiled = numba.njit(nogil=True)(fn)
                self._namespace[fn.__name__] = compiled
            self.compiled = True


def ascii_rewritten(kernel: Callable, text: str, capacity: int, *args) -> str:
    """The ASCII text a kernel writes from ASCII ``text``: ``kernel(text's bytes, out, *args)``
    fills ``out`` (``capacity`` bytes) and returns the length it wrote."""
    out = np.empty(capacity, dtype=np.uint8)
    return out[:kernel(np.frombuffer(text.encode("ascii"), dtype=np.uint8), out, *args)].tobytes().decode("ascii")
