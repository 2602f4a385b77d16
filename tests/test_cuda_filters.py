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


def test_one_axis_filters_and_gaussian_derivative_sums_on_the_device():
    """scipy's 1-D filters reach the device as the N-d ones along one axis; the Laplacian of
    a Gaussian and the gradient magnitude as Gaussian passes and a generated sum."""
    calls = [lambda x: filters.uniform_filter1d(x, 4, axis=0, mode="wrap"),
             lambda x: filters.gaussian_filter1d(x, 1.5, order=1, output=np.float32),
             lambda x: filters.maximum_filter1d(x, 20, axis=0, mode="constant", cval=2),
             lambda x: filters.convolve1d(x, [1, -2, 3], mode="mirror"),
             lambda x: filters.gaussian_laplace(x, 1.0, output=np.float32),
             lambda x: filters.gaussian_gradient_magnitude(x, 1.0, output=np.float32)]
    for dtype in (np.uint8, np.float32):
        a = sample((13, 17), dtype, seed=5)
        for i, call in enumerate(calls):
            exact = dtype is np.uint8 and i in (0, 2, 3)
            check(call(cuda.to_device(a)), call(a), exact=exact)
    for seed in (6, 7):  # again on new data (several routes a call: not replayed whole)
        a = sample((13, 17), np.float32, seed=seed)
        check(calls[5](cuda.to_device(a)), calls[5](a), exact=False)


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
        with pytest.raises(sk.StencilError, match="more than 49 elements .* CUDA C\\+\\+ path"
                           ".* numba.cuda fallback .* 2048 bytes"):
            filters.median_filter(d, 46)  # 2116 bytes of window
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
    # the simulator (whose tiles are narrower); two modes (3.4 s a call under the simulator)
    if mode in ("reflect", "constant"):
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


def _reference(name, a, kw, size):
    """Filter ``name`` of ``a`` without stencilkit: NumPy windows (exact for integer data and
    for rank filters; the README's differences from scipy.ndimage followed), scipy.ndimage in
    float64 for float sums, block_reduce by NumPy."""
    import scipy.ndimage as ndi
    from filter_table import exact_mean, numpy_reference, round_even_saturate

    mode, cval = kw["mode"], kw["cval"]
    out = np.dtype(kw.get("output") or a.dtype)
    if name == "block_reduce":
        b = a
        if mode == "constant":  # edge="pad" with cval, as np.pad converts it
            b = np.pad(a, [(0, -n % 2) for n in a.shape],
                       constant_values=np.asarray(cval).astype(a.dtype))
        starts = [np.arange(0, n, 2) for n in b.shape]
        if mode in ("wrap", "mirror"):  # max
            for ax, st in enumerate(starts):
                b = np.maximum.reduceat(b, st, axis=ax)
            return b
        total = b.astype(np.float64 if a.dtype.kind == "f" else np.int64)
        count = np.ones((), np.int64)
        for ax, st in enumerate(starts):
            total = np.add.reduceat(total, st, axis=ax)
            count = np.multiply.outer(count, np.diff(np.append(st, b.shape[ax])))
        if a.dtype.kind == "f":
            return (total / count).astype(a.dtype)
        return exact_mean(total, count, a.dtype)
    if name == "gaussian_filter":
        ref = ndi.gaussian_filter(a.astype(np.float64), 1.0, mode=mode, cval=cval)
        return ref.astype(out) if out.kind == "f" else round_even_saturate(ref, out)
    table = {"uniform_filter": ("uniform_filter", {"size": size}),
             "maximum_filter": ("maximum_filter", {"size": size}),
             "minimum_filter": ("minimum_filter", {"size": size}),
             "median_filter": ("median_filter", {"size": size}),
             "sobel": ("sobel", {"axis": -1})}
    fname, params = table[name]
    if a.dtype.kind == "f" or out.kind == "f":
        if fname == "sobel":  # (the padded array's windows: scipy pads its 2nd pass again)
            return numpy_reference(fname, a.astype(np.float64), params, mode, cval, out)
        if fname == "uniform_filter":
            return ndi.uniform_filter(a.astype(np.float64), size, mode=mode,
                                      cval=cval).astype(out)
    return numpy_reference(fname, a, params, mode, cval, out)  # (rank: a NaN in a window wins)


@pytest.mark.parametrize("kind", ["numba", "cupy"])
def test_a_random_walk_of_calls_each_equals_a_reference(fake_gpu, kind):
    """The per-call caches (launches, paths, parsed arguments, plans: stencilkit._dtypes.remember)
    never hand a call what another worked out: 200 device calls on the C++ path, each one
    argument away from the call before (the filter, the data's dtype and shape: words and not,
    a stack; the mode; the cval: -0.0 beside 0.0, NaN; the output), each against a reference
    that shares no cache with stencilkit (:func:`_reference`: rank filters and integer results
    exactly, bits of zeros and NaN included; float sums to round-off; integer Gaussians within 1
    of scipy's float64 result). ``kind``: the inputs are the simulator's numba device arrays,
    or the stand-in CuPy's arrays (``cpp_host.FakeCupyArray``: the CuPy-input paths); repeated
    configurations replay (``stencilkit.backends.cuda_replay``)."""
    from stencilkit import resample

    put = cuda.to_device if kind == "numba" else fake_gpu.asarray

    data = {}
    for dt in (np.uint8, np.float32, np.int16):
        for shape in ((20, 24), (21, 23), (2, 20, 24)):
            a = sample(shape, dt, seed=len(data))
            if dt == np.float32:
                a = -np.abs(a)  # all <= 0: a cval of -0.0 or 0.0 decides a maximum's sign
                a[a == 0] = -1.0
            data[dt, shape] = a

    def block_reduce(x, kw, size):  # (constant: padded blocks of cval)
        func = "max" if kw["mode"] in ("wrap", "mirror") else "mean"
        if kw["mode"] != "constant":
            return resample.block_reduce(x, 2, func)
        return resample.block_reduce(x, 2, func, edge="pad", cval=kw["cval"])

    calls = {  # name: (call, window, exact for floats)
        "uniform_filter": (lambda x, kw, size: filters.uniform_filter(x, size, **kw), 3, False),
        "uniform_filter 15 x 5": (lambda x, kw, size: filters.uniform_filter(x, size, **kw),
                                  (15, 5), False),
        "maximum_filter": (lambda x, kw, size: filters.maximum_filter(x, size, **kw), 3, True),
        "minimum_filter 9": (lambda x, kw, size: filters.minimum_filter(x, size, **kw), 9, True),
        "median_filter": (lambda x, kw, size: filters.median_filter(x, size, **kw), 3, True),
        "gaussian_filter": (lambda x, kw, size: filters.gaussian_filter(x, 1.0, **kw), 0, False),
        "sobel": (lambda x, kw, size: filters.sobel(x, axis=-1, **kw), 0, False),
        "block_reduce": (block_reduce, 0, True),
    }
    floats = [k for k in data if k[0] == np.float32]
    choices = {"call": list(calls), "data": list(data) + floats,  # (repeats: more often)
               "mode": MODES + ["constant"] * 3, "cval": [0.0, -0.0] * 3 + [3.0, np.nan],
               "output": [None, "float"]}
    rng = np.random.default_rng(16)
    state = {"call": "maximum_filter", "data": (np.float32, (20, 24)), "mode": "constant",
             "cval": 0.0, "output": None}
    changed = dict.fromkeys(choices, 0)
    for _ in range(200):
        what = list(choices)[rng.integers(len(choices))]
        options = [v for v in choices[what] if str(v) != str(state[what])]
        state[what] = options[rng.integers(len(options))]
        changed[what] += 1
        fn, size, rank = calls[state["call"]]
        dt, shape = state["data"]
        a = data[dt, shape]
        if isinstance(size, tuple) and a.ndim == 3:
            size = (1, *size)
        cval = state["cval"]
        if np.isnan(cval) and (np.dtype(dt).kind != "f" or state["call"] == "block_reduce"):
            cval = 3.0  # (no integer value; block_reduce refuses NaN)
        kw = {"mode": state["mode"], "cval": cval}
        if state["output"] and state["call"] != "block_reduce":
            kw["output"] = np.float64 if rank else np.float32
        msg = f"{state['call']} {np.dtype(dt)} {shape} {kw}"
        res = fn(put(a), kw, size)
        got = res.copy_to_host() if kind == "numba" else res.get()
        want = _reference(state["call"].split()[0], a, kw, size)
        assert got.dtype == want.dtype and got.shape == want.shape, msg
        if state["call"] == "gaussian_filter" and want.dtype.kind != "f":
            assert np.abs(got.astype(np.int64) - want).max() <= 1, msg
        elif rank or want.dtype.kind != "f":
            if want.dtype.kind == "f":  # zeros' signs and NaN compared as bits
                got, want = (np.where(np.isnan(v), np.nan, v).view(f"u{v.itemsize}")
                             for v in (got, want))
            np.testing.assert_array_equal(got, want, err_msg=msg)
        else:
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-4, err_msg=msg)
    assert min(changed.values()) >= 25, changed


@pytest.mark.parametrize("cpp", [True, False], ids=["cpp", "numba"])
def test_integer_outputs_follow_the_rule_on_the_device(request, cpp):
    """The filters' integer-output rule on device arrays (rank filters computed in the data's
    type on the device, then rounded and saturated; float line passes likewise), on both kernel
    paths, equal to the CPU's (tests/test_filters.py checks those against exact references)."""
    if cpp:
        request.getfixturevalue("fake_gpu")
    i16 = sample((2, 18, 21), np.int16, seed=3)
    f32 = sample((18, 21), np.float32, seed=4)
    f32[5, 6:9] = [2.5, -0.5, np.nan]
    cases = [
        (i16, np.uint8, lambda x, o: filters.maximum_filter(x, 3, output=o)),  # 16-bit box
        (i16, np.uint8, lambda x, o: filters.median_filter(x, (1, 3, 3), output=o)),
        (f32, np.int16, lambda x, o: filters.minimum_filter(x, 15, mode="wrap", output=o)),
        (f32, np.uint8, lambda x, o: filters.median_filter(x, 3, output=o)),
        (f32, np.uint8, lambda x, o: filters.uniform_filter(x, 7, output=o)),
        (f32, np.uint64, lambda x, o: filters.gaussian_filter(x, 1.5, output=o)),
    ]
    if cpp:  # (large medians: C++ only)
        cases.append((i16, np.uint8, lambda x, o: filters.median_filter(x, (1, 9, 9),
                                                                        output=o)))
    for a, out, fn in cases:
        want = fn(a, out)
        got = fn(cuda.to_device(a), out)
        assert not isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got.copy_to_host(), want)
        into = cuda.device_array(a.shape, out)
        assert fn(cuda.to_device(a), into) is into
        np.testing.assert_array_equal(into.copy_to_host(), want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, np.bool_,
                                   np.float16])
def test_large_medians_on_the_numba_fallback_equal_the_cpu(dtype):
    """Windows of more than 49 elements without the C++ path (cuda_lines.run_rank: the window
    gathered through the mode's index map, the CPU's own quickselect as a device function):
    the CPU's element bit for bit (signed zeros, the first NaN), boxes over the last two axes
    and over three, constant padding, a stack, and output= arrays."""
    from stencilkit.backends import cuda_cpp

    if cuda_cpp.available()[0]:
        pytest.skip("the C++ path takes these (tests/test_cuda_rank.py)")
    a = sample((2, 11, 13), dtype, seed=1)
    if a.dtype.kind == "f":
        a[0, 3, 4] = np.nan
        a[1, ::2, ::3] = 0.0
        a[1, 1::2, ::3] = -0.0
    for size, mode in (((1, 9, 9), "reflect"), ((1, 8, 9), "constant"), ((3, 5, 5), "wrap")):
        want = filters.median_filter(a, size, mode=mode, cval=2.5)
        got = filters.median_filter(cuda.to_device(a), size, mode=mode, cval=2.5)
        got = got.copy_to_host()
        assert got.dtype == want.dtype
        if a.dtype.kind == "f":
            got, want = got.view(f"u{a.itemsize}"), want.view(f"u{a.itemsize}")
        np.testing.assert_array_equal(got, want, err_msg=f"{size} {mode}")
    for fn, which in ((filters.rank_filter, 70), (filters.percentile_filter, -90)):  # any rank
        want = fn(a, which, (1, 8, 9), mode="nearest")
        got = fn(cuda.to_device(a), which, (1, 8, 9), mode="nearest").copy_to_host()
        if a.dtype.kind == "f":
            got, want = got.view(f"u{a.itemsize}"), want.view(f"u{a.itemsize}")
        np.testing.assert_array_equal(got, want, err_msg=fn.__name__)
    out = cuda.device_array(a.shape, np.float64)
    assert filters.median_filter(cuda.to_device(a), (1, 9, 9), output=out) is out
    np.testing.assert_array_equal(out.copy_to_host(),
                                  filters.median_filter(a, (1, 9, 9), output=np.float64))


def _taps(w):
    """Taps of integer weights ``w``: (offsets from the centre, weight)."""
    centre = np.array(w.shape) // 2
    return [(tuple(int(i) for i in np.array(idx) - centre), int(w[idx]))
            for idx in np.ndindex(*w.shape)]


SOBEL0 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]])


def _exact_correlation(a, w, mode, cval):
    """Integer weights over integer data, exactly (int64), each read through the mode's index
    map of tests/reference.py: an independent reference."""
    from reference import pad_index

    maps = [[pad_index(k, n, mode) for k in range(-(s // 2), n + s - 1 - s // 2)]
            for n, s in zip(a.shape, w.shape)]
    padded = np.full([len(m) for m in maps], cval, np.int64)
    for idx in np.ndindex(*padded.shape):
        at = tuple(m[i] for m, i in zip(maps, idx))
        if None not in at:
            padded[idx] = a[at]
    out = np.zeros(a.shape, np.int64)
    for idx in np.ndindex(*w.shape):
        out += int(w[idx]) * padded[tuple(slice(i, i + n) for i, n in zip(idx, a.shape))]
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_shared_row_sums_are_exact_on_the_cpu_and_the_cpp_path(fake_gpu, dtype):
    """Integer correlations whose rows share sums (uniform-like, Sobel-like, rows repeated
    with a factor, 3-D), every mode: the CPU and the C++ host build equal the exact int64
    correlation through tests/reference.py's index maps, and the emitted C++ keeps the
    rows' sums apart (``sk_keep``)."""
    from stencilkit import _cpp_body, _passes

    rng = np.random.default_rng(11)
    info = np.iinfo(dtype)
    u, v = rng.integers(-3, 4, 3), rng.integers(-3, 4, 3)
    u[0], v[0] = 2, -1  # (no zero row or column: each weight set shares rows)
    cases = [np.ones((3, 3), int), SOBEL0.T, np.outer(u, v),
             np.array([[1, 2, 0, -1], [5, 5, 5, 5], [-2, -4, 0, 2]]),
             np.stack([np.outer(u, v), np.ones((3, 3), int)])]
    for w in cases:
        assert _cpp_body.shared_rows(_taps(w)), w
        a = rng.integers(info.min, info.max, (2, 11, 13) if w.ndim == 3 else (11, 13),
                         endpoint=True).astype(dtype)
        for mode in ("reflect", "mirror", "nearest", "wrap", "constant"):
            cval = -3 if info.min < 0 else 3
            want = _exact_correlation(a, w, mode, cval).astype(np.int32)
            got_cpu = filters.correlate(a, w, mode=mode, cval=cval, output=np.int32)
            got_gpu = filters.correlate(fake_gpu.asarray(a), w, mode=mode, cval=cval,
                                        output=np.int32).get()
            np.testing.assert_array_equal(got_cpu, want, err_msg=f"{w} {mode}")
            np.testing.assert_array_equal(got_gpu, want, err_msg=f"{w} {mode}")
    st = _passes.compiled(_passes.linear_source(2, _taps(SOBEL0), np.dtype(np.int64), "int",
                                                np.dtype(np.int32)))
    src = st.cuda_source(np.zeros((8, 8), dtype), acc=np.dtype(np.int64),
                         out_dtype=np.dtype(np.int32))
    assert src.count("= sk_keep(") == 2


@pytest.mark.parametrize("op", ["minimum", "maximum"])
def test_small_box_extremes_keep_the_order_of_one_chain_bit_for_bit(fake_gpu, op):
    """Small boxes' extremes take each row's first, then the rows' (a row's extreme shared by
    the outputs that hold it). np.minimum / np.maximum are associative to the bit (a NaN
    wins, else one of equal values by a fixed rule), so the CPU and the C++ kernel (the
    stand-in's host build) equal one left-to-right chain over the window in C order, as
    the filters computed it before: NaN payloads and zero signs included, every mode."""
    from stencilkit import _passes

    rng = np.random.default_rng(4)
    values = np.array([-0.0, 0.0, 1.5, -1.5, np.nan, np.nan], np.float32)
    values.view(np.uint32)[5] |= 7  # another NaN payload
    a = rng.choice(values, (13, 17))
    fn = getattr(filters, f"{op}_filter")
    for size, mode in [((3, 3), "reflect"), ((3, 2), "nearest"), ((2, 4), "constant"),
                       ((3, 3), "wrap")]:
        taps = [(np.array(o) - np.array(size) // 2, 1) for o in np.ndindex(*size)]
        chain = "".join(f"np.{op}(" for _ in taps[1:]) + ", ".join(
            [_passes.read(2, taps[0][0])] + [f"{_passes.read(2, o)})" for o, _ in taps[1:]])
        want = _passes.run(f"def f_{op}(a):\n    return {chain}\n", a, mode, -0.0,
                           np.dtype(np.float32), np.dtype(np.float32))
        assert _passes.extreme_source(2, taps, op).count(f"np.{op}(a[") == size[0]
        for got in (fn(a, size, mode=mode, cval=-0.0),
                    fn(fake_gpu.asarray(a), size, mode=mode, cval=-0.0).get()):
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                          err_msg=f"{op} {size} {mode}")
