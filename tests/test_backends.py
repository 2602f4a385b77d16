"""The backend interface: where calls go, and that a new backend is a module plus register()."""

import sys
import types

import numpy as np
import pytest
from kernels import sample, smooth

import stencilkit as sk
from stencilkit import backends, filters, resample


class Tagged:
    """The arrays of a toy backend: a NumPy array in a wrapper no other backend knows."""

    def __init__(self, a):
        self.a = np.asarray(a)

    shape = property(lambda self: self.a.shape)
    dtype = property(lambda self: self.a.dtype)
    ndim = property(lambda self: self.a.ndim)
    size = property(lambda self: self.a.size)


def _unwrap(arrays):
    return [a.a if isinstance(a, Tagged) else a for a in arrays]


class ToyBackend(backends.Backend):
    """Runs everything on the CPU backend, unwrapping and rewrapping; records its calls."""

    name = "toy"
    array_kind = "a Tagged array"
    input_kind = "Tagged"

    def __init__(self):
        self.calls = []
        self.cpu = backends.get("cpu")

    def keeps(self, a):
        return isinstance(a, Tagged)

    def to_host(self, a):
        return a.a

    def zeros(self, shape, dtype, like):
        return Tagged(np.zeros(shape, dtype))

    def apply(self, st, arrays, params, out, overrides):
        self.calls.append(("apply", st.__name__))
        res = self.cpu.apply(st, _unwrap(arrays), params, None, overrides)
        if out is None:
            return Tagged(res)
        out.a[...] = res
        return out

    def iterate(self, st, arrays, params, out, overrides, steps, block_steps):
        self.calls.append(("iterate", steps))
        return Tagged(self.cpu.iterate(st, _unwrap(arrays), params, None, overrides, steps,
                                       block_steps))

    def explain(self, st, what, arrays, params, overrides):
        return f"{what}: the toy backend"

    def decimate(self, arr, full):
        self.calls.append(("decimate", full))
        return Tagged(self.cpu.decimate(arr.a, full))

    def block_reduce(self, arr, full, op, edge, cval, out_dtype):
        self.calls.append(("block_reduce", op))
        return Tagged(self.cpu.block_reduce(arr.a, full, op, edge, cval, out_dtype))


@pytest.fixture
def toy():
    module = types.ModuleType("stencilkit_toy_backend")
    module.BACKEND = ToyBackend()
    sys.modules[module.__name__] = module
    backends.register("toy", module.__name__,
                      lambda arrays, target: target is None and any(
                          isinstance(a, Tagged) for a in arrays),
                      lambda a: isinstance(a, Tagged), first=True)
    try:
        yield module.BACKEND
    finally:
        backends.unregister("toy")
        del sys.modules[module.__name__]


def test_the_default_backends_and_their_order():
    assert backends.names()[-3:] == ("dask", "cuda", "cpu")
    a = np.zeros((4, 4))
    assert backends.select([a]).name == "cpu"
    assert backends.select([a], "cuda").name == "cuda"
    assert backends.for_array(a) is backends.get("cpu")
    assert not backends.foreign(a) and not backends.foreign([1, 2])


def test_a_registered_backend_runs_kernels_filters_and_resampling(toy):
    a = sample((30, 40), np.uint8)
    t = Tagged(a)
    # a user kernel
    got = smooth(t, mode="wrap")
    assert isinstance(got, Tagged)
    np.testing.assert_array_equal(got.a, smooth(a, mode="wrap"))
    assert ("apply", smooth.__name__) in toy.calls
    got = smooth.iterate(t, steps=3)
    np.testing.assert_array_equal(got.a, smooth.iterate(a, steps=3))
    assert "the toy backend" in smooth.explain(t)
    # filters: small windows as generated stencils, large ones through the default
    # run_passes (the passes as generated stencils), all on the toy backend
    for call in (lambda x: filters.uniform_filter(x, 3),
                 lambda x: filters.uniform_filter(x, 15),
                 lambda x: filters.gaussian_filter(x, 2.0),
                 lambda x: filters.maximum_filter(x, 9, mode="constant", cval=7),
                 lambda x: filters.median_filter(x, 3),
                 lambda x: filters.sobel(x)):
        toy.calls.clear()
        got = call(t)
        assert isinstance(got, Tagged) and toy.calls
        np.testing.assert_array_equal(got.a, call(a))
    with pytest.raises(sk.StencilError, match="no lowering to generated stencils"):
        filters.median_filter(t, 9)  # a rank pass has no generated-stencil lowering
    with pytest.raises(sk.StencilTypeError, match="a Tagged array for Tagged input"):
        filters.uniform_filter(t, 3, output=np.zeros_like(a))
    empty = filters.uniform_filter(Tagged(np.zeros((0, 5), np.uint8)), 3)
    assert isinstance(empty, Tagged) and empty.shape == (0, 5)
    # resampling
    np.testing.assert_array_equal(resample.decimate(t, 3).a, resample.decimate(a, 3))
    np.testing.assert_array_equal(resample.block_reduce(t, 2).a, resample.block_reduce(a, 2))
    got = resample.pyramid_down(t, 2)  # the generic route: generated prefilter, decimate
    want = resample.pyramid_down(a, 2)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.a, w)


def test_another_backends_arrays_are_copied_to_the_host(toy):
    # target="cpu": the toy backend does not claim the call, and the CPU backend reads the
    # Tagged array through the toy backend's to_host
    a = sample((12, 13), np.int16)
    res = smooth(Tagged(a), target="cpu")
    assert isinstance(res, np.ndarray)
    np.testing.assert_array_equal(res, smooth(a))
    assert not toy.calls
