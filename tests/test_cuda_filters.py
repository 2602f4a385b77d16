"""Filters on device arrays: the generated-kernel paths on the CUDA backend against the CPU.

Runs under numba's CUDA simulator without a GPU (tests/conftest.py). Integer results are exact;
float results equal the CPU's to round-off (the CPU sums large windows with running sums and
fused sweeps, the GPU tap by tap in the same precision).
"""

import numpy as np
import pytest
from filter_table import TABLE, assert_device_result
from kernels import sample

import stencilkit as sk
from stencilkit import filters

pytestmark = pytest.mark.skipif(not sk.cuda_available(), reason="no CUDA")
cuda = pytest.importorskip("numba.cuda")

MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]
CASES = [(e, i, p) for e in TABLE for i, p in enumerate(e.params or ({},))]


def check(got, want, exact):
    assert not isinstance(got, np.ndarray)  # a device array came back
    assert_device_result(got.copy_to_host(), want, exact)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("entry,i,params", CASES,
                         ids=[f"{e.name}-{i}" for e, i, _ in CASES])
def test_table_on_the_device(entry, i, params, dtype, mode):
    a = sample((11, 14), dtype, seed=i)
    kw = {"mode": mode}
    if mode == "constant":
        kw["cval"] = 3
    want = entry.stencilkit(a, params, **kw)
    got = entry.stencilkit(cuda.to_device(a), params, **kw)
    exact = np.dtype(dtype).kind != "f" and entry.exact_ints or entry.rank
    check(got, want, exact)


@pytest.mark.parametrize("call,exact_ints", [
    # passes per axis on the GPU; running sums / fused sweeps / van Herk on the CPU
    (lambda x: filters.uniform_filter(x, 7), True),
    (lambda x: filters.gaussian_filter(x, 2.0), False),
    (lambda x: filters.maximum_filter(x, 6, mode="constant", cval=1), True),
    (lambda x: filters.gaussian_filter(x, 1.0, mode=["wrap", "nearest"]), False),
    (lambda x: filters.laplace(x, mode=["reflect", "constant"]), True),
    (lambda x: filters.sobel(x, axis=1, mode=["mirror", "wrap"]), True),
], ids=["uniform7", "gaussian2", "max6", "gauss-modes", "laplace-modes", "sobel-modes"])
def test_large_windows_and_per_axis_modes(call, exact_ints):
    # the dtypes of the filter table, whose CPU kernels the other tests compile anyway
    for dtype in (np.uint8, np.float32):
        a = sample((13, 17), dtype, seed=7)
        check(call(cuda.to_device(a)), call(a), exact=exact_ints and dtype is np.uint8)


def test_output_on_the_device():
    a = sample((6, 7), np.uint8)
    out = cuda.device_array(a.shape, np.float32)
    assert filters.uniform_filter(cuda.to_device(a), 3, output=out) is out
    np.testing.assert_array_equal(out.copy_to_host(),
                                  filters.uniform_filter(a, 3, output=np.float32))
    empty = filters.gaussian_filter(cuda.to_device(np.zeros((0, 4), np.float32)), 1.0)
    assert empty.shape == (0, 4)


def test_device_errors():
    from stencilkit.backends import cuda_cpp

    d = cuda.to_device(np.ones((9, 9), np.uint8))
    if not cuda_cpp.available()[0]:  # (with CuPy and NVRTC: the histogram kernel runs it)
        with pytest.raises(sk.StencilError, match="more than 49 elements .* CUDA C\\+\\+ path"):
            filters.median_filter(d, 9)
    with pytest.raises(sk.StencilTypeError, match="output must be a device array"):
        filters.uniform_filter(d, 3, output=np.empty((9, 9), np.uint8))
    with pytest.raises(sk.StencilTypeError, match="output must be a NumPy array"):
        filters.uniform_filter(np.ones((9, 9)), 3, output=cuda.device_array((9, 9)))


@pytest.mark.parametrize("mode", MODES)
def test_integer_box_runs_as_running_sums_equal_to_the_cpu(mode, monkeypatch):
    # uniform_filter of integer images and stacks: one box2 launch (running sums down column
    # strips, a shared tile of column sums), bit for bit the CPU's; wider than a tile, with
    # origins, int8 negatives, a stack, and windows too wide for it (generated passes)
    from stencilkit.backends import cuda_box, cuda_lines

    launches = []
    real = cuda_lines.box2
    monkeypatch.setattr(cuda_lines, "box2", _Counting(real, launches))
    real_cpp = cuda_box.run  # on a GPU with the C++ path: its box kernel instead

    def cpp(*args, **kw):
        launches.append(1)
        return real_cpp(*args, **kw)

    monkeypatch.setattr(cuda_box, "run", cpp)
    kw = {"mode": mode, **({"cval": 3} if mode == "constant" else {})}
    cases = [
        (np.uint8, (13, 17), dict(size=7)),
        (np.int8, (9, 30), dict(size=(5, 21), origin=(1, -3))),
        (np.int16, (3, 10, 11), dict(size=(1, 5, 7))),
        (np.bool_, (8, 9), dict(size=(3, 10), output=np.uint8)),
        (np.uint8, (7, 9), dict(size=(6, 5), output=np.uint64)),  # clip beyond int64
    ]
    for dtype, shape, args in cases:
        a = sample(shape, dtype, seed=2)
        launches.clear()
        got = filters.uniform_filter(cuda.to_device(a), **args, **kw)
        check(got, filters.uniform_filter(a, **args, **kw), exact=True)
        assert launches == [1]
    # 299 columns of halo: more than a tile takes (cuda_lines.HALO_MAX), on a GPU as under
    # the simulator (whose tiles are narrower)
    a = sample((6, 310), np.uint8, seed=3)
    launches.clear()
    check(filters.uniform_filter(cuda.to_device(a), (3, 300), **kw),
          filters.uniform_filter(a, (3, 300), **kw), exact=True)
    assert launches == []
    if mode != "constant":  # an unused cval is ignored, even NaN (as scipy)
        a = sample((13, 17), np.uint8, seed=4)
        check(filters.uniform_filter(cuda.to_device(a), 9, mode=mode, cval=np.nan),
              filters.uniform_filter(a, 9, mode=mode), exact=True)
    out = cuda.device_array((13, 17), np.uint8)
    a = sample((13, 17), np.uint8, seed=4)
    assert filters.uniform_filter(cuda.to_device(a), 9, output=out, **kw) is out
    np.testing.assert_array_equal(out.copy_to_host(), filters.uniform_filter(a, 9, **kw))


class _Counting:
    """A kernel whose launches are counted (``kernel[grid, block](...)``)."""

    def __init__(self, kernel, launches):
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, config):
        self.launches.append(1)
        return self.kernel[config]
