import os
import sys

import pytest

# CUDA tests run everywhere: without a GPU, numba's CUDA simulator runs the generated kernels
# on the CPU (it must be chosen before numba is first imported). On a machine with a GPU,
# `NUMBA_ENABLE_CUDASIM=0 make test` runs the same tests on the device.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    """The C++ path with a stand-in CuPy whose kernels run on the host (tests/cpp_host.py; needs
    the simulator's device arrays for the rest of the CUDA backend)."""
    import cpp_host

    from stencilkit.backends import cuda as cuda_backend
    from stencilkit.backends import cuda_cpp

    if not cuda_backend.simulated():
        pytest.skip("drives the C++ path through the simulator's arrays")
    if cpp_host.CXX is None:
        pytest.skip("needs a C++ compiler (g++)")
    fake = cpp_host.FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "cupy.cuda", fake.cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.compiler", fake.cuda.compiler)
    monkeypatch.setattr(cuda_cpp, "available", lambda: (True, "a stand-in CuPy (test)"))
    monkeypatch.setattr(cuda_cpp, "_KERNELS", {})
    # the stand-in "binaries" in the test's own folder: no test sees another's compiles
    monkeypatch.setattr(cuda_cpp, "_binaries", lambda: tmp_path / "binaries")
    return fake
