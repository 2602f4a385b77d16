"""Hypothesis property tests: random shapes, offsets, kernels and modes against the reference."""

import importlib.util
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from kernels import conversions, converted, shift, smooth, smooth_py, window_spread
from reference import apply_reference, pad_index

pytestmark = pytest.mark.property

MODES = ["reflect", "mirror", "nearest", "wrap", "constant", "skip"]


@settings(max_examples=150, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=7),
    di=st.integers(-3, 3),
    dj=st.integers(-3, 3),
    mode=st.sampled_from(MODES),
    seed=st.integers(0, 2**16),
)
def test_any_offset_any_shape(shape, di, dj, mode, seed):
    """A read at any offset, on any shape down to 1 x 1, follows the mode's definition."""
    a = np.random.default_rng(seed).integers(-99, 99, shape)
    got = shift(a, di, dj, mode=mode, cval=-1 if mode in ("constant", "skip") else None)
    want = np.empty_like(a)
    n, m = shape[-2:]
    for idx in np.ndindex(*shape):
        *b, i, j = idx
        if mode == "skip":
            inside = 3 <= i < n - 3 and 3 <= j < m - 3
            want[idx] = a[idx[:-2] + (i + di, j + dj)] if inside else -1
            continue
        qi, qj = pad_index(i + di, n, mode), pad_index(j + dj, m, mode)
        want[idx] = -1 if qi is None or qj is None else a[tuple(b) + (qi, qj)]
    np.testing.assert_array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(width=64), st.floats(width=32),
                              st.integers(-2**64, 2**64).map(float),
                              st.sampled_from([2.0**k + d for k in (7, 8, 15, 16, 31, 32, 63, 64)
                                               for d in (-1.5, -1, -0.5, 0, 0.5, 1)])),
                    min_size=1, max_size=40),
    k=st.integers(0, 12),
    dtype=st.sampled_from([np.float64, np.float32]),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_float_to_int_conversions_of_any_value(values, k, dtype, sign):
    """Any float (NaN, infinities, subnormals, the integer types' edges) converted in a body:
    the exact integer, rounded as the call says, saturated, NaN 0 (tests/kernels.py)."""
    with np.errstate(over="ignore"):
        x = (np.array(values) * sign).astype(dtype)
    np.testing.assert_array_equal(conversions(x, k), converted(x, k))


@settings(max_examples=60, deadline=None)
@given(
    a=hnp.arrays(np.int16, hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6)),
    mode=st.sampled_from(MODES),
    data=st.data(),
)
def test_smooth_on_random_arrays_and_axes(a, mode, data):
    axes = tuple(data.draw(st.permutations(range(a.ndim)))[:2])
    got = smooth(a, mode=mode, axes=axes)
    moved = np.moveaxis(a, axes, (-2, -1))
    want = apply_reference(smooth_py, [moved], ndim=2, mode=mode, radius=smooth.radius)
    np.testing.assert_array_equal(got, np.moveaxis(want, (-2, -1), axes))


_KERNEL_DIR = Path(tempfile.mkdtemp(prefix="stencilkit-hypothesis-"))
_counter = itertools.count()


def _load_kernel(source: str):
    """Write a kernel module to a file and import it, as a user's module would be."""
    path = _KERNEL_DIR / f"random_kernel_{next(_counter)}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@st.composite
def random_kernels(draw):
    ndim = draw(st.integers(1, 3))
    offsets = draw(st.lists(st.tuples(*[st.integers(-3, 3)] * ndim), min_size=1, max_size=5,
                            unique=True))
    weights = draw(st.lists(st.integers(-4, 4), min_size=len(offsets), max_size=len(offsets)))
    terms = " + ".join(f"({w}) * x[{', '.join(map(str, o))}]" for w, o in zip(weights, offsets))
    return ndim, offsets, f"def kern(x):\n    return {terms}\n"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel=random_kernels(), mode=st.sampled_from(MODES), seed=st.integers(0, 2**16),
       data=st.data())
def test_random_constant_offset_kernels(kernel, mode, seed, data):
    """Random offsets and weights: the inferred radius and every mode match the reference."""
    ndim, offsets, source = kernel
    module = _load_kernel("import stencilkit as sk\n\n" + source + "\nst = sk.stencil(kern)\n")
    st_, py = module.st, module.kern
    for d in range(ndim):
        lo = min(o[d] for o in offsets)
        hi = max(o[d] for o in offsets)
        assert st_.radius[d] == (max(0, -lo), max(0, hi))
    shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    a = np.random.default_rng(seed).integers(-1000, 1000, shape)
    want = apply_reference(py, [a], ndim=ndim, mode=mode, cval=0, radius=st_.radius)
    np.testing.assert_array_equal(st_(a, mode=mode), want)


@st.composite
def chunked_arrays(draw, min_dims=2, max_dims=3):
    """A random int array and a random chunking of it (uneven, one-element and whole chunks)."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=9))
    chunks = []
    for n in shape:
        sizes = []
        left = n
        while left:
            size = draw(st.integers(1, left))
            sizes.append(size)
            left -= size
        chunks.append(tuple(sizes))
    seed = draw(st.integers(0, 2**16))
    return np.random.default_rng(seed).integers(-99, 99, shape), tuple(chunks)


@settings(max_examples=120, deadline=None)
@given(data=chunked_arrays(), mode=st.sampled_from(MODES), di=st.integers(-3, 3),
       dj=st.integers(-3, 3))
def test_dask_equals_numpy_for_any_chunking(data, mode, di, dj):
    """Dask result == NumPy result, bit for bit, for random shapes, chunkings, modes, offsets."""
    da = pytest.importorskip("dask.array")
    a, chunks = data
    x = da.from_array(a, chunks=chunks)
    cval = 7 if mode in ("constant", "skip") else None
    np.testing.assert_array_equal(
        shift(x, di, dj, mode=mode, cval=cval).compute(scheduler="sync"),
        shift(a, di, dj, mode=mode, cval=cval),
    )
    np.testing.assert_array_equal(smooth(x, mode=mode).compute(scheduler="sync"),
                                  smooth(a, mode=mode))


@settings(max_examples=60, deadline=None)
@given(data=chunked_arrays(min_dims=2, max_dims=2), mode=st.sampled_from(MODES),
       steps=st.integers(0, 5), block_steps=st.integers(1, 5))
def test_dask_temporal_blocking_equals_numpy(data, mode, steps, block_steps):
    """iterate with halos radius * block_steps deep == step by step, any chunking and mode."""
    da = pytest.importorskip("dask.array")
    from kernels import KERNELS

    asym2 = KERNELS["asym2"][0]
    a, chunks = data
    x = da.from_array(a, chunks=chunks)
    np.testing.assert_array_equal(
        asym2.iterate(x, steps=steps, mode=mode, block_steps=block_steps).compute(
            scheduler="sync"),
        asym2.iterate(a, steps=steps, mode=mode),
    )


@settings(max_examples=40, deadline=None)
@given(data=chunked_arrays(min_dims=2, max_dims=2),
       mode=st.sampled_from(["reflect", "mirror", "nearest", "wrap", "constant"]),
       iterations=st.integers(1, 3), border_value=st.integers(0, 1))
def test_morphology_on_dask_equals_scipy_for_any_chunking(data, mode, iterations,
                                                           border_value):
    """Grey and binary morphology on random chunkings (halos deeper than chunks, iterations
    that stack them) == scipy.ndimage on the whole array."""
    da = pytest.importorskip("dask.array")
    ndi = pytest.importorskip("scipy.ndimage")
    from stencilkit import morphology

    a, chunks = data
    x = da.from_array(a, chunks=chunks)
    np.testing.assert_array_equal(
        morphology.white_tophat(x, size=(3, 2), mode=mode, cval=5).compute(scheduler="sync"),
        ndi.white_tophat(a, size=(3, 2), mode=mode, cval=5))
    b = a > 0
    y = da.from_array(b, chunks=chunks)
    np.testing.assert_array_equal(
        morphology.binary_closing(y, iterations=iterations, border_value=border_value)
        .compute(scheduler="sync"),
        ndi.binary_closing(b, iterations=iterations, border_value=border_value))


@settings(max_examples=40, deadline=None)
@given(data=chunked_arrays(min_dims=2, max_dims=3),
       mode=st.sampled_from(["reflect", "mirror", "nearest", "wrap", "constant"]),
       window=st.sampled_from([(3, 2), (1, 4), (2, 1)]), moved=st.booleans())
def test_generic_filter_on_dask_equals_scipy_for_any_chunking(data, mode, window, moved):
    """generic_filter (a compiled user function) on random chunkings == scipy.ndimage's
    generic_filter on the whole array (the float value, and its integer rounding)."""
    da = pytest.importorskip("dask.array")
    ndi = pytest.importorskip("scipy.ndimage")
    from stencilkit import filters

    a, chunks = data
    x = da.from_array(a, chunks=chunks)
    axes = (a.ndim - 2, a.ndim - 1)
    origin = (0, -1 if moved and window[1] > 1 else 0)
    kw = {"size": window, "mode": mode, "cval": 2.5, "origin": origin, "axes": axes}
    want = ndi.generic_filter(a, window_spread, output=np.float64, **kw)
    np.testing.assert_array_equal(
        filters.generic_filter(x, window_spread, output=np.float64, **kw).compute(scheduler="sync"),
        want)
    np.testing.assert_array_equal(
        filters.generic_filter(x, window_spread, **kw).compute(scheduler="sync"),
        np.rint(want).astype(a.dtype))
