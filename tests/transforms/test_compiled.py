"""Kernels compiled on first use (transforms/compiled.py)."""

import os
import subprocess
import sys

import pytest

from wirestream.transforms.compiled import CompiledKernels


def test_kernels_are_bound_compiled_in_their_namespace_on_first_compile():
    namespace: dict = {}
    kernels = CompiledKernels(namespace)

    @kernels.kernel
    def double(x):
        return 2 * x

    namespace["double"] = double
    assert not kernels.compiled and namespace["double"] is double  # plain until compiled
    kernels.compile()
    kernels.compile()  # a second call changes nothing
    assert kernels.compiled and namespace["double"] is not double
    assert type(namespace["double"]).__name__ == "CPUDispatcher"
    assert namespace["double"](21) == 42


_FIRST_COMPILE = """
import sys
from wirestream.transforms.compiled import CompiledKernels, without_blas
namespace = {}
kernels = CompiledKernels(namespace)
def triple(x):
    return 3 * x
kernels.kernel(triple)
if sys.argv[1] == "without":
    with without_blas():
        kernels.compile()
        answer = namespace["triple"](14)
else:
    kernels.compile()
    answer = namespace["triple"](14)
print(answer, "scipy.linalg" in sys.modules)
import scipy.linalg.cython_blas  # imports as ever afterwards
"""


def test_kernels_first_compiled_without_blas_leave_scipy_unimported(tmp_path):
    pytest.importorskip("scipy.linalg")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    outputs = {how: subprocess.run([sys.executable, "-c", _FIRST_COMPILE, how], capture_output=True,
                                   text=True, check=True, env=env).stdout.split()
               for how in ("with", "without")}
    # numba imports scipy.linalg on its first compile when scipy is installed: the
    # 0.2 s a run's workers would wait for, which without_blas saves.
    assert outputs == {"with": ["42", "True"], "without": ["42", "False"]}
