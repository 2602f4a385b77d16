"""Dask backend: lazy results equal the NumPy result bit for bit, any chunking and mode."""

import numpy as np
import pytest
from kernels import KERNELS, blend, sample, shift, smooth

import stencilkit as sk
from stencilkit import filters

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

MODES = list(sk.MODES)

# A 10 x 14 array in chunkings that make halos cross chunk edges in every way (dask-image's test
# shape, plus chunks smaller than the halo, one-element chunks and a single chunk).
CHUNKINGS_2D = {
    "single": (10, 14),
    "even": (5, 7),
    "uneven": ((3, 7), (6, 5, 3)),
    "smaller-than-halo": (2, 2),
    "one-element": ((1,) * 10, 14),
    "one-element-both": (1, 1),
}


def compute(x):
    return x.compute(scheduler="sync")


@pytest.mark.parametrize("chunks", list(CHUNKINGS_2D.values()), ids=list(CHUNKINGS_2D))
@pytest.mark.parametrize("mode", MODES)
def test_2d_kernels_every_chunking(mode, chunks):
    a = sample((10, 14), np.int16)
    x = da.from_array(a, chunks=chunks)
    for name in ("smooth", "asym2"):
        st = KERNELS[name][0]
        y = st(x, mode=mode, cval=5 if mode in ("constant", "skip") else None)
        assert isinstance(y, da.Array) and y.chunks == x.chunks and y.dtype == a.dtype
        want = st(a, mode=mode, cval=5 if mode in ("constant", "skip") else None)
        np.testing.assert_array_equal(compute(y), want)


@pytest.mark.parametrize("mode", MODES)
def test_runtime_offsets_reach_far_chunks(mode):
    """Offsets of 3 with chunks of 1 and 2: regions gather from several neighbours (or wrap)."""
    a = sample((6, 7), np.int32)
    for chunks in ((1, 2), (2, 7), (6, 1)):
        x = da.from_array(a, chunks=chunks)
        for di, dj in ((-3, 3), (3, -2), (0, 3)):
            np.testing.assert_array_equal(compute(shift(x, di, dj, mode=mode)),
                                          shift(a, di, dj, mode=mode))


@pytest.mark.parametrize("mode", MODES)
def test_1d_and_3d_kernels(mode):
    skew1, lap3 = KERNELS["skew1"][0], KERNELS["lap3"][0]
    s = sample((13,), np.float64)
    for chunks in (1, 2, 5, 13):
        np.testing.assert_array_equal(compute(skew1(da.from_array(s, chunks=chunks), mode=mode)),
                                      skew1(s, mode=mode))
    v = sample((5, 6, 7), np.int64)
    for chunks in ((2, 3, 4), (5, 1, 7), (1, 6, 2)):
        np.testing.assert_array_equal(compute(lap3(da.from_array(v, chunks=chunks), mode=mode)),
                                      lap3(v, mode=mode))


def test_batch_axes_and_axes_option():
    a = sample((4, 9, 8), np.uint8)
    for chunks in ((1, 9, 8), (3, 4, 3), (2, 2, 8)):
        x = da.from_array(a, chunks=chunks)
        np.testing.assert_array_equal(compute(smooth(x)), smooth(a))
        np.testing.assert_array_equal(compute(smooth(x, axes=(0, 2), mode="wrap")),
                                      smooth(a, axes=(0, 2), mode="wrap"))


def test_several_inputs_mixed_with_numpy():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 8, 9))
    x = da.from_array(a, chunks=(3, 4))
    y = da.from_array(b, chunks=(5, 2))  # different chunks: aligned to the first input's
    for mode in MODES:
        np.testing.assert_array_equal(compute(blend(x, y, 0.5, mode=mode)),
                                      blend(a, b, 0.5, mode=mode))
    np.testing.assert_array_equal(compute(blend(x, b, 2.0)), blend(a, b, 2.0))


def test_results_are_lazy():
    calls = []

    def make(block):
        calls.append(1)
        return block

    x = da.from_array(sample((8, 8), np.int8), chunks=4).map_blocks(make)
    calls.clear()  # map_blocks itself probed `make` on an empty block
    y = smooth(x)
    assert calls == [] and isinstance(y, da.Array)
    compute(y)
    assert calls


def test_classic_pipeline_and_gufunc_on_a_stack():
    """DESIGN.md's classic use: a stack chunked along frames, smooth(x).max() and the gufunc."""
    x = da.random.default_rng(0).integers(0, 127, size=(12, 40, 50), chunks=(5, None, None),
                                          dtype="int8")
    stack = x.compute()
    assert int(smooth(x).max().compute()) == int(smooth(stack).max())
    np.testing.assert_array_equal(smooth.gufunc(x).compute(), smooth(stack))


def test_iterate_on_dask_equals_numpy():
    a = sample((9, 11), np.float64)
    x = da.from_array(a, chunks=(4, 3))
    np.testing.assert_array_equal(compute(smooth.iterate(x, steps=3, mode="mirror")),
                                  smooth.iterate(a, steps=3, mode="mirror"))


def test_threaded_scheduler_matches():
    a = sample((64, 70), np.uint16)
    x = da.from_array(a, chunks=(16, 20))
    with dask.config.set(scheduler="threads", num_workers=4):
        for _ in range(3):
            np.testing.assert_array_equal(smooth(x, mode="wrap").compute(),
                                          smooth(a, mode="wrap"))


def test_dask_errors():
    x = da.from_array(np.zeros((4, 4)), chunks=2)
    with pytest.raises(sk.StencilError, match="out= is not supported for Dask arrays"):
        smooth(x, out=np.zeros((4, 4)))
    unknown = x[x[:, 0] >= 0]
    with pytest.raises(sk.StencilError, match="unknown chunk sizes"):
        smooth(unknown)
    with pytest.raises(sk.StencilError, match="has 1 axis/axes but the kernel has 2"):
        smooth(da.zeros(4, chunks=2))
    with pytest.raises(TypeError, match="cannot compute on"):
        smooth(da.zeros((3, 3), dtype="M8[s]", chunks=2))


@pytest.mark.parametrize("mode", MODES)
def test_temporal_blocking_is_exact(mode):
    """iterate on Dask: halos radius * s deep every s steps, equal to step-by-step NumPy."""
    asym2 = KERNELS["asym2"][0]  # asymmetric: a reflected state is not a reflected result
    a = sample((12, 17), np.int64) % 1000
    want = asym2.iterate(a, steps=7, mode=mode)
    for chunks in ((6, 9), (12, 5), (4, 17), ((5, 7), (8, 9))):
        x = da.from_array(a, chunks=chunks)
        for block_steps in (1, 3, 7, None):
            y = asym2.iterate(x, steps=7, mode=mode, block_steps=block_steps)
            np.testing.assert_array_equal(compute(y), want, err_msg=f"{chunks} {block_steps}")


def test_temporal_blocking_shrinks_the_graph():
    a = sample((64, 64), np.float64)
    x = da.from_array(a, chunks=(32, 32))
    step_by_step = smooth.iterate(x, steps=8, block_steps=1)
    blocked = smooth.iterate(x, steps=8)  # auto: halo 8 fits half of a 32 chunk
    assert len(blocked.dask) * 4 <= len(step_by_step.dask)
    np.testing.assert_array_equal(compute(blocked), smooth.iterate(a, steps=8))
    with pytest.raises(sk.StencilError, match="block_steps must be a positive int"):
        smooth.iterate(x, steps=2, block_steps=0)


def _stage(mode):
    return sk.stencil(KERNELS["asym2"][1], mode=mode)


@pytest.mark.parametrize("modes", [("reflect", "constant", "skip"), ("mirror", "nearest"),
                                   ("wrap", "wrap"), ("wrap", "reflect")])
def test_chain_equals_sequential_with_one_exchange(modes):
    stages = [_stage(m) for m in modes]
    chained = sk.chain(*stages, (blend_one, 3))
    a = sample((13, 17), np.int64) % 1000
    want = a
    for st in stages:
        want = st(want)
    want = blend_one(want, 3)
    np.testing.assert_array_equal(chained(a), want)
    for chunks in ((5, 6), (13, 4), (2, 17), ((6, 7), (1, 16))):
        x = da.from_array(a, chunks=chunks)
        y = chained(x)
        np.testing.assert_array_equal(compute(y), want, err_msg=str(chunks))
    assert chained.radius == tuple(
        (sum(st.radius[d][0] for st in stages) + blend_one.radius[d][0],
         sum(st.radius[d][1] for st in stages) + blend_one.radius[d][1]) for d in range(2))
    if "wrap" not in modes:  # (blend_one is "nearest": a wrap stage makes the chain mixed)
        # one gather layer: as many tasks as chunks above the input, not one layer per stage
        x = da.from_array(a, chunks=(5, 6))
        assert len(chained(x).dask) == 2 * x.npartitions


@sk.stencil(mode="nearest")
def blend_one(x, k):
    return x[0, 0] * k - x[1, 1]


def test_chain_errors():
    with pytest.raises(sk.StencilError, match="a chain stage takes one array"):
        sk.chain(blend)
    with pytest.raises(sk.StencilError, match="takes 1 array"):
        sk.chain(blend_one)  # missing its parameter
    with pytest.raises(sk.StencilTypeError, match="each stage is a Stencil"):
        sk.chain(np.sum)
    with pytest.raises(sk.StencilError, match="different numbers of core axes"):
        sk.chain(smooth, KERNELS["skew1"][0])


def test_all_periodic_chain_exchanges_once():
    stages = [_stage("wrap"), _stage("wrap"), _stage("wrap")]
    a = sample((11, 12), np.int64) % 1000
    want = a
    for st in stages:
        want = st(want)
    x = da.from_array(a, chunks=(3, 5))
    y = sk.chain(*stages)(x)
    np.testing.assert_array_equal(compute(y), want)
    assert len(y.dask) == 2 * x.npartitions


def test_iterate_on_dask_checks_like_numpy():
    x = da.from_array(np.zeros((4, 4), np.int16), chunks=2)
    with pytest.raises(sk.StencilError, match="output dtype equal"):
        smooth.iterate(x, steps=2, out_dtype=np.float64)
    with pytest.raises(sk.StencilError, match="needs out=None"):
        smooth.iterate(x, steps=0, out=np.zeros((4, 4), np.int16))


def test_device_chunks_run_each_regions_passes_on_its_backend(monkeypatch):
    """The branch Dask stacks of CuPy chunks take (RegionPasses: each region's own backend
    runs the passes, the CUDA backend's kernels for CuPy), driven here with NumPy chunks
    taken for device ones: regions with their halo, every mode, equal to the whole array."""
    from stencilkit.backends import dask as dask_backend

    seen = []
    real = dask_backend.RegionPasses.__call__

    def spy(self, region, out=None):
        seen.append(region.shape)
        return real(self, region, out)

    monkeypatch.setattr(dask_backend, "is_device_array", lambda a: isinstance(a, np.ndarray))
    monkeypatch.setattr(dask_backend.RegionPasses, "__call__", spy)
    a = sample((37, 45), np.uint8, seed=3)
    x = da.from_array(a, chunks=(16, 20))
    for fn, arg in [(filters.uniform_filter, 15), (filters.gaussian_filter, 2.0),
                    (filters.median_filter, 9), (filters.maximum_filter, 11),
                    (filters.median_filter, 3), (filters.minimum_filter, 3)]:  # (small windows:
        # Backend.rank_kernel, the GPU's own kernels for CuPy chunks)
        for mode in ("reflect", "wrap", "constant"):
            got = fn(x, arg, mode=mode).compute(scheduler="sync")
            np.testing.assert_array_equal(got, fn(a, arg, mode=mode), err_msg=f"{fn} {mode}")
    assert seen and all(s != a.shape for s in seen)  # regions, not the whole array
