"""Kernels compiled on first use (transforms/compiled.py)."""

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
