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

import threading
from typing import Callable


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
