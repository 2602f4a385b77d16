"""Replayed device calls (stencilkit.backends.cuda_replay) against full runs and the CPU.

The C++ path runs on the host through the stand-in CuPy (the ``fake_gpu`` fixture). A call's
second run of a configuration is a replay: it must give the CPU's result on its own new data
and output, and must step aside wherever the first run's decisions would not hold (another
alignment, a changed setting, another device), and never keep a call whose work it does not
cover.
"""

import contextlib
import gc
import weakref

import numpy as np
import pytest
import scipy.ndimage as ndi
from kernels import sample

from stencilkit import filters, resample
from stencilkit.backends import cuda_box, cuda_replay

cpp_host = pytest.importorskip("cpp_host")
cuda = pytest.importorskip("numba.cuda")
pytestmark = pytest.mark.skipif(cpp_host.CXX is None, reason="needs a C++ compiler (g++)")

# (what, call, dtype, whether it takes output=): one call per route that offers replays
CALLS = [
    ("uniform 15 uint8: box sweep", lambda x, **k: filters.uniform_filter(x, 15, **k),
     np.uint8, True),
    ("maximum 3 uint8: extremes in words", lambda x, **k: filters.maximum_filter(x, 3, **k),
     np.uint8, True),
    ("median 3 float32: sorted columns", lambda x, **k: filters.median_filter(x, 3, **k),
     np.float32, True),
    ("median 5 uint8: network on pairs", lambda x, **k: filters.median_filter(x, 5, **k),
     np.uint8, True),
    ("median 5 int32: network in a generated stencil",
     lambda x, **k: filters.median_filter(x, 5, **k),
     np.int32, True),
    ("gaussian 1.5 float32: separable sweep, fused",
     lambda x, **k: filters.gaussian_filter(x, 1.5, **k), np.float32, True),
    ("gaussian 2 uint8: separable sweep, its ties in a scratch buffer",
     lambda x, **k: filters.gaussian_filter(x, 2.0, **k), np.uint8, True),
    ("sobel float32: generated stencil", lambda x, **k: filters.sobel(x, **k),
     np.float32, True),
    ("rank 2 of 3 x 3 uint8: network on pairs", lambda x, **k: filters.rank_filter(x, 2, 3, **k),
     np.uint8, True),
    ("block_reduce 2 mean uint8", lambda x, **k: resample.block_reduce(x, 2, "mean"),
     np.uint8, False),
    ("block_reduce (1, 2, 3) max int16, a volume",
     lambda x, **k: resample.block_reduce(x, (1, 2, 3), "max"), np.int16, False),
    ("decimate 3 float32", lambda x, **k: resample.decimate(x, 3), np.float32, False),
]
IDS = [c[0].split(":")[0] for c in CALLS]
assert len(set(IDS)) == len(IDS)


def shape_of(dtype, call):
    return (3, 19, 24) if "volume" in call else (19, 24)


@pytest.fixture
def recorded(monkeypatch, fake_gpu):
    """Counts of recordings, as ``recorded[0]``, with the stand-in CuPy in place."""
    counts = [0]
    real = cuda_replay._record

    def spy(*args):
        counts[0] += 1
        return real(*args)

    monkeypatch.setattr(cuda_replay, "_record", spy)
    return counts


def put(kind, fake, a):
    """``a`` on the "device": a numba (simulator) array, or a stand-in CuPy array."""
    return cuda.to_device(a) if kind == "numba" else fake.asarray(a)


def get(x):
    return x.get() if hasattr(x, "get") else x.copy_to_host()


@pytest.mark.parametrize("kind", ["numba", "cupy"])
@pytest.mark.parametrize("what,call,dtype,takes_out", CALLS, ids=IDS)
def test_a_replay_gives_the_cpu_result_on_new_data_and_outputs(recorded, fake_gpu, what, call,
                                                               dtype, takes_out, kind):
    shape = shape_of(dtype, what)
    hosts = [sample(shape, dtype, seed=s) for s in (0, 1, 2, 0)]
    wants = [call(a) for a in hosts]  # (first: the CPU's first-use imports bump GENERATION)
    before, whole = cuda_replay.REPLAYED[0], cuda_replay.WHOLE[0]
    results = [call(put(kind, fake_gpu, a)) for a in hosts]
    assert all(type(r) is type(results[0]) for r in results)  # (CuPy in, CuPy out)
    got = [get(r) for r in results]
    assert recorded[0] == 1, "the first call records, the others replay"
    assert cuda_replay.REPLAYED[0] - before == 3
    assert cuda_replay.WHOLE[0] - whole == 3, "each replay the whole call's"
    np.testing.assert_array_equal(got[3], got[0])  # a replay is the full run, bit for bit
    for i, (g, w) in enumerate(zip(got, wants)):
        close(g, w, f"call {i}")
    if not takes_out:
        return
    for i in range(2):  # a new output array each call: the replay writes it, returns it
        o = put(kind, fake_gpu, np.zeros(shape, wants[0].dtype))
        assert call(put(kind, fake_gpu, hosts[0]), output=o) is o
        np.testing.assert_array_equal(get(o), got[0], err_msg=f"output {i}")
    assert recorded[0] == 2  # (the output's configuration: recorded once)


@pytest.mark.parametrize("what,call,dtype,takes_out", CALLS, ids=IDS)
def test_a_kept_replay_keeps_no_array_of_its_first_call_alive(recorded, what, call, dtype,
                                                              takes_out):
    shape = shape_of(dtype, what)
    call(sample(shape, dtype))  # (the CPU's first-use imports)
    arrays = [cuda.to_device(sample(shape, dtype, seed=s)) for s in range(2)]
    refs = [weakref.ref(a) for a in arrays]
    before = cuda_replay.REPLAYED[0]
    results = [weakref.ref(call(a)) for a in arrays]
    assert recorded[0] == 1 and cuda_replay.REPLAYED[0] == before + 1
    del arrays
    gc.collect()
    assert [r() is None for r in refs + results] == [True] * 4


def close(got, want, msg=""):
    """Integers: the CPU's bit for bit; floats: to float32 round-off."""
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=msg)
    else:
        np.testing.assert_array_equal(got, want, err_msg=msg)


@pytest.mark.parametrize("kind", ["numba", "cupy"])
def test_in_place_calls_replay_through_a_copy(recorded, fake_gpu, kind):
    a = sample((19, 24), np.uint8, seed=4)
    x = put(kind, fake_gpu, a)
    want = a
    for _ in range(3):  # output is the input: each call reads all of it before writing
        want = filters.uniform_filter(want, 5)
        assert filters.uniform_filter(x, 5, output=x) is x
        np.testing.assert_array_equal(get(x), want)
    assert recorded[0] == 1


@pytest.mark.parametrize("fn", [filters.sobel, lambda x, **k: filters.uniform_filter(x, 15, **k)],
                         ids=["generated stencil", "float box sweep"])
@pytest.mark.parametrize("first", ["in place", "apart"])
@pytest.mark.parametrize("kind", ["numba", "cupy"])
def test_in_place_calls_replay_through_a_copy_in_either_order(recorded, fake_gpu, kind, first,
                                                             fn):
    """Replays into out= that is the input and into another array, either recorded first
    (one configuration: the same replay serves both)."""
    a = sample((19, 24), np.float32, seed=9)
    x, o = put(kind, fake_gpu, a), put(kind, fake_gpu, np.zeros_like(a))
    want = a
    for step in range(6):
        in_place = (step % 2 == 0) == (first == "in place")
        if in_place:  # the replay must not write the input while reading it
            want = fn(want)
            assert fn(x, output=x) is x
            close(get(x), want)
        else:  # apart from the input: written directly
            assert fn(x, output=o) is o
            close(get(o), fn(want))
    assert recorded[0] == 1


def test_against_scipy_on_replays(recorded):
    for seed in range(3):
        a = sample((23, 32), np.uint8, seed=seed)
        np.testing.assert_array_equal(
            filters.maximum_filter(cuda.to_device(a), 5, mode="wrap").copy_to_host(),
            ndi.maximum_filter(a, 5, mode="wrap"))
    assert recorded[0] == 1


@pytest.mark.parametrize("fn", [filters.maximum_filter, filters.uniform_filter],
                         ids=["sweep", "generated stencil"])
@pytest.mark.parametrize("kind", ["numba", "cupy"])
def test_an_unaligned_view_is_not_handed_the_word_kernel(recorded, fake_gpu, kind, fn):
    # the same shape, strides and dtype as the first call's input, one byte off a word
    a = sample((19, 24), np.uint8, seed=5)
    want = fn(a, 3)
    assert np.array_equal(get(fn(put(kind, fake_gpu, a), 3)), want)
    base = put(kind, fake_gpu, np.zeros(a.size + 4, np.uint8))
    view = base[1:1 + a.size].reshape(a.shape)
    if kind == "numba":
        view.copy_to_device(a)
    else:
        view[...] = a
    before = cuda_replay.REPLAYED[0]
    np.testing.assert_array_equal(get(fn(view, 3)), want)
    assert cuda_replay.REPLAYED[0] == before  # it declined; the call ran in full
    assert recorded[0] == 2


@pytest.mark.parametrize("call", [filters.sobel, lambda x: filters.median_filter(x, 3),
                                  lambda x: filters.uniform_filter(x, 15)],
                         ids=["generated stencil", "sorted columns", "float box sweep"])
def test_a_plain_cupy_call_replays_on_its_arrays_as_they_are(recorded, fake_gpu, monkeypatch,
                                                              call):
    """A C-contiguous CuPy input without ``output=``: the replay launches on the input and a
    new output of the call's shape (no views of either), and gives the full run's result."""
    a, b = (sample((19, 24), np.float32, seed=s) for s in (7, 8))
    x = fake_gpu.asarray(a)
    want = get(call(fake_gpu.asarray(b)))  # (recorded: the full run)
    views = [0]
    real = type(x).reshape

    def counting(self, *shape):
        views[0] += 1
        return real(self, *shape)

    monkeypatch.setattr(type(x), "reshape", counting)
    before = cuda_replay.REPLAYED[0]
    got = call(fake_gpu.asarray(b))
    assert cuda_replay.REPLAYED[0] == before + 1 and views[0] == 0
    assert type(got) is type(x) and got.shape == x.shape
    np.testing.assert_array_equal(get(got), want)
    np.testing.assert_array_equal(get(call(x)), get(call(fake_gpu.asarray(a))))


@pytest.mark.parametrize("change", ["a setting", "the device", "the C++ switch"])
def test_a_changed_setting_or_device_records_anew(recorded, monkeypatch, fake_gpu, change):
    a = sample((19, 24), np.uint8, seed=6)
    want = filters.uniform_filter(a, 9)
    for _ in range(2):
        filters.uniform_filter(cuda.to_device(a), 9)
    assert recorded[0] == 1
    if change == "a setting":  # (any stencilkit module's attribute)
        monkeypatch.setattr(cuda_box, "UNITS", cuda_box.UNITS + 1)
    elif change == "the device":  # (kernels are compiled per device)
        monkeypatch.setattr(fake_gpu.cuda.runtime, "getDevice", lambda: 1)
    else:  # (read at each call; here the stand-in's C++ path stays on: only the key changes)
        monkeypatch.setenv("STENCILKIT_CUDA_CPP", "0")
    grids = len(fake_gpu.grids)
    got = filters.uniform_filter(cuda.to_device(a), 9)
    assert recorded[0] == 2
    np.testing.assert_array_equal(got.copy_to_host(), want)
    assert len(fake_gpu.grids) > grids


def test_calls_with_work_outside_one_route_are_not_replayed(recorded):
    # float data into a uint8 output: the passes, then a saturating cast of the result
    before = cuda_replay.REPLAYED[0]
    for seed in range(3):
        a = sample((19, 24), np.float32, seed=seed) * 300
        got = filters.uniform_filter(cuda.to_device(a), 15, output=np.uint8)
        np.testing.assert_array_equal(got.copy_to_host(),
                                      filters.uniform_filter(a, 15, output=np.uint8))
    assert cuda_replay.REPLAYED[0] == before
    assert recorded[0] == 1  # recorded once, then run in full without recording


def test_warnings_are_given_on_every_call(recorded):
    a = (sample((9, 12), np.float32, seed=8) + 1j).astype(np.complex64)
    for _ in range(2):
        with pytest.warns(UserWarning, match="promoting specified output dtype"):
            filters.uniform_filter(cuda.to_device(a), 3, output=np.float32)


def test_weights_count_by_their_values(recorded):
    a = sample((19, 24), np.float32, seed=9)
    w = np.arange(9, dtype=np.float64).reshape(3, 3)
    ws = (w, w.copy(), w[::-1].copy(), w.astype(np.float32), w[::-1].copy())
    wants = [filters.correlate(a, weights) for weights in ws]  # (float32 sums, as the GPU's)
    before = cuda_replay.REPLAYED[0]
    for weights, want in zip(ws, wants):
        close(filters.correlate(cuda.to_device(a), weights).copy_to_host(), want)
    assert recorded[0] == 3 and cuda_replay.REPLAYED[0] - before == 2
    np.testing.assert_allclose(wants[0], ndi.correlate(a.astype(np.float64), w), rtol=1e-3,
                               atol=0.05)


def test_lists_and_large_arrays_among_the_arguments_run_in_full(recorded, monkeypatch):
    monkeypatch.setattr(cuda_replay, "SMALL", 8)  # (a 3 x 3 array is large then)
    a = sample((19, 24), np.float32, seed=9)
    for w in ([[0, 1, 0], [1, 2, 1], [0, 1, 0]], np.ones((3, 3)) / 9):
        want = filters.correlate(a, w)
        for _ in range(2):
            close(filters.correlate(cuda.to_device(a), w).copy_to_host(), want)
    assert recorded[0] == 0


@pytest.mark.parametrize("how", ["ENABLED", "off()"])
def test_off_runs_every_call_in_full(recorded, monkeypatch, how):
    from kernels import diffuse

    a = sample((19, 24), np.uint8, seed=10)
    u = sample((19, 24), np.float32, seed=10)
    wants = [filters.uniform_filter(a, 15), diffuse(u, 0.1), resample.pyramid_down(a, 1)[0],
             diffuse.iterate(u, 0.1, steps=3)]
    calls = [lambda: filters.uniform_filter(cuda.to_device(a), 15),
             lambda: diffuse(cuda.to_device(u), 0.1),
             lambda: resample.pyramid_down(cuda.to_device(a), 1)[0],
             lambda: diffuse.iterate(cuda.to_device(u), 0.1, steps=3, block_steps=1)]
    if how == "ENABLED":
        monkeypatch.setattr(cuda_replay, "ENABLED", False)
    before = cuda_replay.REPLAYED[0]
    with cuda_replay.off() if how == "off()" else contextlib.nullcontext():
        for _ in range(2):
            for call, want in zip(calls, wants):
                close(call().copy_to_host(), want)
    assert recorded[0] == 0 and cuda_replay.REPLAYED[0] == before
    if how == "off()":  # (and after the block, the replays kept before it run again)
        for call, want in zip(calls, wants):
            close(call().copy_to_host(), want)
            close(call().copy_to_host(), want)
        assert cuda_replay.REPLAYED[0] - before == 3


def test_every_stencilkit_module_is_watched_after_a_recording(recorded):
    import sys

    filters.uniform_filter(cuda.to_device(sample((8, 8), np.uint8)), 3)
    mods = [m for n, m in sys.modules.items() if n == "stencilkit" or n.startswith("stencilkit.")]
    assert mods and all(isinstance(m, cuda_replay._Watched) for m in mods)
    g = cuda_replay.GENERATION[0]
    cuda_box.SOME_SETTING = 1
    del cuda_box.SOME_SETTING
    assert cuda_replay.GENERATION[0] == g + 2


def test_host_and_dask_input_never_record(recorded):
    a = sample((19, 24), np.uint8)
    filters.uniform_filter(a, 3)
    resample.block_reduce(a, 2)
    assert recorded[0] == 0


# -- kernel calls: replays keyed by the parameters' types, their values passed through -------

def test_kernel_calls_replay_with_each_calls_parameters(fake_gpu):
    from kernels import diffuse, variable_diffusion

    u = sample((19, 24), np.float32, seed=11)
    k = (sample((19, 24), np.float32, seed=12) + 300) / 600
    wants = [diffuse(u, rate) for rate in (0.1, 0.2, 0.05)]
    before = cuda_replay.REPLAYED[0]
    for rate, want in zip((0.1, 0.2, 0.05), wants):  # (a new value: the same replay)
        got = diffuse(cuda.to_device(u), rate).copy_to_host()
        close(got, want, f"k={rate}")
    assert cuda_replay.REPLAYED[0] - before == 2
    want = variable_diffusion(u, k, 0.1)  # two arrays, one of them fixed
    for _ in range(3):
        o = cuda.device_array(u.shape, np.float32)
        assert variable_diffusion(cuda.to_device(u), cuda.to_device(k), 0.1, out=o) is o
        close(o.copy_to_host(), want)
    assert cuda_replay.REPLAYED[0] - before == 4


def test_a_parameter_of_another_type_takes_its_own_module(fake_gpu):
    from kernels import shift

    x = sample((19, 24), np.int32, seed=13)
    for di, dj in [(1, 2), (-3, 0), (np.int8(2), np.int8(-1)), (2, -1)]:
        got = shift(cuda.to_device(x), di, dj).copy_to_host()
        np.testing.assert_array_equal(got, shift(x, di, dj), err_msg=f"{di!r} {dj!r}")


def test_iterate_step_by_step_relaunches_the_first_steps_launches(fake_gpu):
    from kernels import diffuse, variable_diffusion

    u = sample((19, 24), np.float32, seed=14)
    k = (sample((19, 24), np.float32, seed=15) + 300) / 600
    for steps in (1, 2, 5):
        got = diffuse.iterate(cuda.to_device(u), 0.1, steps=steps, block_steps=1)
        close(got.copy_to_host(), diffuse.iterate(u, 0.1, steps=steps), f"{steps} steps")
    grids = len(fake_gpu.grids)
    got = variable_diffusion.iterate(cuda.to_device(u), cuda.to_device(k), 0.1, steps=4,
                                     block_steps=1)
    close(got.copy_to_host(), variable_diffusion.iterate(u, k, 0.1, steps=4))
    assert len(fake_gpu.grids) - grids >= 4  # (at least a launch a step)


@pytest.mark.parametrize("kind", ["numba", "cupy"])
def test_pyramid_levels_replay(fake_gpu, kind):
    before = cuda_replay.REPLAYED[0]
    for seed in range(3):
        a = sample((2, 37, 52), np.uint8, seed=seed)
        want = resample.pyramid_down(a, 2)
        got = resample.pyramid_down(put(kind, fake_gpu, a), 2)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(get(g), w)
    assert cuda_replay.REPLAYED[0] - before >= 4  # (each level of the second and third)


def test_threads_record_and_replay_apart(fake_gpu):
    """Each thread records into its own recording; replays are shared."""
    from concurrent.futures import ThreadPoolExecutor

    hosts = [sample((19, 24), np.uint8, seed=20 + s) for s in range(8)]
    calls = [lambda x: filters.uniform_filter(x, 15), lambda x: filters.maximum_filter(x, 3),
             lambda x: resample.block_reduce(x, 2), lambda x: filters.median_filter(x, 5)]
    wants = [[call(a) for a in hosts] for call in calls]

    def work(i):
        call = calls[i % len(calls)]
        for j in range(len(hosts)):
            k = (i + j) % len(hosts)
            got = call(cuda.to_device(hosts[k])).copy_to_host()
            np.testing.assert_array_equal(got, wants[i % len(calls)][k], err_msg=f"{i} {k}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(8)))


@pytest.mark.parametrize("kind", ["numba", "cupy"])
def test_strided_views_replay_through_their_copy(recorded, fake_gpu, kind):
    """A view that is not C-contiguous is copied by the route (cuda.work); its replay copies
    each new view again."""
    hosts = [sample((19, 48), np.uint8, seed=30 + s) for s in range(3)]
    wants = [filters.uniform_filter(a[:, ::2], 15) for a in hosts]
    before = cuda_replay.REPLAYED[0]
    for a, want in zip(hosts, wants):
        view = put(kind, fake_gpu, a)[:, ::2]
        np.testing.assert_array_equal(get(filters.uniform_filter(view, 15)), want)
    assert recorded[0] == 1 and cuda_replay.REPLAYED[0] - before == 2


def test_overlap_of_cupy_arrays_equals_numpys():
    """``may_share_memory`` reads a CuPy array's pointer, shape and strides (not its interface
    dict, which CuPy builds per call): views of one array, reversed, strided, empty, and
    separate arrays, as NumPy judges their host twins (a superset: it may say True where
    the bytes only interleave)."""
    from stencilkit.backends.cuda import may_share_memory

    base = np.arange(240, dtype=np.float32).reshape(12, 20)
    other = cpp_host.FakeCupyArray(base.copy())
    a = cpp_host.FakeCupyArray(base)
    views = [a, a[:6], a[6:], a[::-1], a[:, ::2], a[3:5, 4:9], a[11:, 19:], a[5:5], a[::2, ::-3],
             other]
    for x in views:
        for y in views:
            want = np.may_share_memory(x.host, y.host)
            got = may_share_memory(x, y)
            assert got or not want, (x.host.__array_interface__, y.host.__array_interface__)
            if x.host.flags.c_contiguous and y.host.flags.c_contiguous:
                assert got == want
    assert not may_share_memory(a[:6], a[6:]) and may_share_memory(a[:7], a[6:])
    assert not may_share_memory(a, other) and not may_share_memory(a[5:5], a)
    assert not may_share_memory(a[5:5, 3:3], a[:, 2:4])


# -- scalars packed once (cuda_cpp.packer): CuPy's launches take them as they are -------------

class _CPointer:
    """Stands for ``cupy.cuda.function.CPointer``."""


class _CScalar(_CPointer):
    """Stands for CuPy 14's ``cupy._core._scalar.CScalar``: a NumPy scalar, converted once."""

    def __init__(self, value):
        self.value, self.dtype = value, value.dtype


@pytest.fixture
def packing(monkeypatch, fake_gpu):
    """Kernels that look like CuPy's (``cupy.RawKernel``) and take their scalars packed: each
    launch unpacks them for the host build, counting those that came unpacked
    (``counts["numpy"]``) and packed (``counts["packed"]``)."""
    import sys
    import types

    from stencilkit.backends import cuda_cpp

    counts = {"numpy": 0, "packed": 0}
    for name, attrs in [("cupy._core._scalar", {"CScalar": _CScalar}),
                        ("cupy.cuda.function", {"CPointer": _CPointer})]:
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))

    class RawKernel:  # (the class of RawModule's kernels)
        def __init__(self, kernel):
            self.kernel = kernel

        def __call__(self, grid, block, args):
            for a in args:
                counts["packed" if isinstance(a, _CScalar) else "numpy"] += isinstance(
                    a, (_CScalar, np.generic))
            self.kernel(grid, block, [a.value if isinstance(a, _CScalar) else a for a in args])

    RawKernel.__module__ = "cupy._core.raw"
    real = cuda_cpp.kernels
    monkeypatch.setattr(cuda_cpp, "kernels", lambda mod, fastmath: {
        k: RawKernel(f) for k, f in real(mod, fastmath).items()})
    monkeypatch.setattr(cuda_cpp, "_LAUNCHES", {})
    cuda_cpp._packer.cache_clear()
    yield counts
    cuda_cpp._packer.cache_clear()


PACKED = CALLS + [
    ("heat step: generated stencil, a parameter",
     lambda x, **k: __import__("kernels").diffuse(x, 0.1), np.float32, False),
    ("pyramid_down 1 level uint8", lambda x, **k: resample.pyramid_down(x, 1)[0], np.uint8,
     False),
    ("median 9 uint8: histograms", lambda x, **k: filters.median_filter(x, 9), np.uint8, False),
    ("median 9 float32: selection", lambda x, **k: filters.median_filter(x, 9), np.float32,
     False),
]


@pytest.mark.parametrize("what,call,dtype,takes_out", PACKED, ids=[c[0].split(":")[0]
                                                                  for c in PACKED])
def test_launches_take_their_scalars_packed_once_where_cupy_allows(packing, fake_gpu, what, call,
                                                                   dtype, takes_out):
    shape = shape_of(dtype, what)
    hosts = [sample(shape, dtype, seed=s) for s in (3, 4)]
    wants = [call(a) for a in hosts]
    for a, want in zip(hosts, wants):  # (the first call records, the second replays)
        close(get(call(fake_gpu.asarray(a))), want)
    assert packing["packed"] > 0
    assert packing["numpy"] == 0, "every scalar of every launch packed"


def test_other_kernels_and_other_scalar_classes_are_not_packed(monkeypatch):
    import sys
    import types

    from stencilkit.backends import cuda_cpp

    class Function:
        def __call__(self, grid, block, args):
            pass

    assert cuda_cpp.packer({"k": Function()}) is None  # (not CuPy's class: the stand-in's)
    Function.__module__ = "cupy.cuda.function"

    class Forgetful(_CScalar):  # a CScalar that does not keep the scalar's type
        def __init__(self, value):
            self.value, self.dtype = value, np.dtype(np.float64)

    for scalar, wanted in [(_CScalar, _CScalar), (Forgetful, None), (object, None)]:
        monkeypatch.setitem(sys.modules, "cupy._core._scalar",
                            types.SimpleNamespace(CScalar=scalar))
        monkeypatch.setitem(sys.modules, "cupy.cuda.function",
                            types.SimpleNamespace(CPointer=_CPointer))
        cuda_cpp._packer.cache_clear()
        assert cuda_cpp.packer({"k": Function()}) is wanted, scalar
    cuda_cpp._packer.cache_clear()
    values = (np.int32(-3), np.uint8(200), np.float64(0.1), np.int64(2**40))
    got = cuda_cpp.packed(_CScalar, values)
    assert [(v.value, v.dtype) for v in got] == [(v, v.dtype) for v in values]
    assert cuda_cpp.packed(None, iter(values)) == values


def test_cupys_raw_kernels_launch_through_their_function():
    from stencilkit.backends import cuda_cpp

    class Function:
        def __call__(self, grid, block, args):
            pass

    class RawKernel:
        enable_cooperative_groups = False

        def __init__(self, kernel):
            self.kernel = kernel

    Function.__module__, RawKernel.__module__ = "cupy.cuda.function", "cupy._core.raw"
    fn = Function()
    assert cuda_cpp._launcher(RawKernel(fn)) is fn
    cooperative = RawKernel(fn)
    cooperative.enable_cooperative_groups = True  # (launched otherwise: kept as it is)
    assert cuda_cpp._launcher(cooperative) is cooperative
    odd = RawKernel(object())  # (not CuPy's Function: kept)
    assert cuda_cpp._launcher(odd) is odd
    RawKernel.__module__ = "tests"
    other = RawKernel(fn)
    assert cuda_cpp._launcher(other) is other


def test_cupys_own_scalar_class_keeps_each_type_and_value():
    """Where the real CuPy imports (no GPU needed): its CScalar as :func:`packer` expects it."""
    function = pytest.importorskip("cupy.cuda.function")
    if not hasattr(function, "Function"):
        pytest.skip("the stand-in CuPy is installed here")
    from cupy._core import raw

    from stencilkit.backends import cuda_cpp

    pack = cuda_cpp._packer(raw.RawKernel)
    if pack is None:
        pytest.skip("this CuPy has no CScalar of CuPy 14's form (its launches convert)")
    assert cuda_cpp._packer(function.Function) is pack
    for v in (np.int32(-7), np.int64(-2**40), np.uint8(255), np.float32(1e-40), np.float64(-0.0),
              np.bool_(True), np.uint32(2**31)):
        c = pack(v)
        assert isinstance(c, function.CPointer)
        assert c.dtype == v.dtype and c.value == v and np.signbit(c.value) == np.signbit(v)
