"""Checks that need a real CUDA GPU (and CuPy); each skips cleanly without one.

Run them on a GPU machine with `NUMBA_ENABLE_CUDASIM=0 .venv/bin/python -m pytest -m gpu` after
`pip install -e '.[gpu,test]'`.
"""

import numpy as np
import pytest
from kernels import sample, smooth

import stencilkit as sk
from stencilkit import filters, resample
from stencilkit.backends import cuda as cuda_backend

pytestmark = pytest.mark.gpu


def real_gpu():
    ok, why = sk.cuda_available(explain=True)
    if not ok or cuda_backend.simulated():
        pytest.skip(f"needs a real CUDA GPU ({why})")


@pytest.fixture
def cupy():
    real_gpu()
    return pytest.importorskip("cupy")


def test_cupy_in_cupy_out(cupy):
    a = sample((300, 517), np.uint8)
    for mode in sk.MODES:
        r = smooth(cupy.asarray(a), mode=mode)
        assert isinstance(r, cupy.ndarray)
        np.testing.assert_array_equal(r.get(), smooth(a, mode=mode))
    r = smooth(cupy.asarray(sample((3, 40, 50), np.float16)), axes=(0, 2))
    np.testing.assert_array_equal(r.get(), smooth(sample((3, 40, 50), np.float16), axes=(0, 2)))


def test_cupy_filters_and_resampling(cupy):
    a = sample((257, 301), np.uint8)
    d = cupy.asarray(a)
    np.testing.assert_array_equal(filters.uniform_filter(d, 15).get(),
                                  filters.uniform_filter(a, 15))
    np.testing.assert_array_equal(filters.median_filter(d, 5).get(), filters.median_filter(a, 5))
    np.testing.assert_array_equal(resample.block_reduce(d, 2).get(), resample.block_reduce(a, 2))
    g = filters.gaussian_filter(cupy.asarray(a.astype(np.float32)), 2.0).get()
    np.testing.assert_allclose(g, filters.gaussian_filter(a.astype(np.float32), 2.0), rtol=1e-5)


def test_dask_with_cupy_chunks(cupy):
    da = pytest.importorskip("dask.array")
    a = sample((4, 300, 200), np.int16)
    x = da.from_array(a, chunks=(1, 128, 96)).map_blocks(cupy.asarray)
    y = smooth(x, mode="reflect")
    out = y.compute()
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_array_equal(out.get(), smooth(a))
    np.testing.assert_array_equal(smooth.iterate(x, steps=4).compute().get(),
                                  smooth.iterate(a, steps=4))


def test_more_than_2_31_elements(cupy):
    # numba #9229: cuda.grid() overflows 32 bits past 2**31 threads; the generated kernels
    # compute indices in 64 bits. 2**31 + 2**20 int8 elements in and out: about 4.3 GB.
    free, _ = cupy.cuda.runtime.memGetInfo()
    n1 = 2**20
    n0 = 2**11 + 1
    if free < 3 * n0 * n1:
        pytest.skip("not enough GPU memory")

    @sk.stencil(mode="wrap")
    def east(x):
        return x[0, 1]

    a = cupy.arange(n0 * n1, dtype=cupy.int8).reshape(n0, n1)
    r = east(a)
    assert r.size > 2**31
    # the last row lies past element 2**31: each element is its east neighbour, wrapping
    np.testing.assert_array_equal(r[-1, :-1].get(), a[-1, 1:].get())
    assert int(r[-1, -1].get()) == int(a[-1, 0].get())
    np.testing.assert_array_equal(r[0, :-1].get(), a[0, 1:].get())
