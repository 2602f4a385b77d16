"""stencilkit.morphology against scipy.ndimage (the independent reference), NumPy and Dask.

Grey morphology over dtypes x windows (box sizes odd and even, footprints, a non-flat
structure) x modes x origins; the compositions; binary erosion and dilation with structures,
origins, iterations (a count, and until nothing changes), masks, border values and axes;
Dask with uneven chunks smaller than the window equals NumPy. Each window's kernel compiles
once per dtype: the cases share windows.
"""

import numpy as np
import pytest
import scipy.ndimage as ndi
from kernels import sample

from stencilkit import StencilArgumentError, StencilError, StencilTypeError, morphology

da = pytest.importorskip("dask.array")

CROSS = ndi.generate_binary_structure(2, 1)
ODD = np.array([[1, 1, 0], [0, 1, 1]], bool)  # even length along axis 0, asymmetric
STRUCTURE = np.array([[0, 1, 0], [2, 3, 1], [0, -1, 2]])  # non-flat (integer offsets)
GREY = ["grey_erosion", "grey_dilation", "grey_opening", "grey_closing",
        "morphological_gradient", "morphological_laplace", "white_tophat", "black_tophat"]
WINDOWS = [({"size": 3}, 0), ({"size": (2, 4)}, (0, -1)), ({"footprint": CROSS}, 0),
           ({"footprint": ODD}, (-1, 1)), ({"structure": STRUCTURE}, 0),
           ({"structure": STRUCTURE, "footprint": CROSS}, (1, 0))]
WINDOW_IDS = ["size3", "size2x4", "cross", "odd_footprint", "structure", "structure_footprint"]


def _image(dtype, shape=(11, 14), seed=0):
    a = sample(shape, dtype, seed=seed)
    if np.dtype(dtype).kind in "iu":  # (values whose +-structure and Laplace stay in range)
        a = (a.astype(np.int64) % 60 + 20).astype(dtype)
    return a


@pytest.mark.parametrize("window,origin,dtype", [
    (w, o, d) for (w, o), i in zip(WINDOWS, WINDOW_IDS)
    for d in [np.uint8, np.int16, np.float32] + ([np.float64] if i == "structure" else [])],
    ids=[f"{i}-{np.dtype(d).name}" for i in WINDOW_IDS
         for d in [np.uint8, np.int16, np.float32] + ([np.float64] if i == "structure" else [])])
def test_grey_morphology_equals_scipy(window, origin, dtype):
    a = _image(dtype)
    for name in GREY:
        for mode, cval in (("reflect", 0.0), ("constant", 5.0), ("wrap", 0.0), ("mirror", 0.0)):
            kw = dict(window, mode=mode, cval=cval, origin=origin)
            if a.dtype.kind in "iu":  # (exact, then the filters' rule; scipy wraps)
                info = np.iinfo(a.dtype)
                want = getattr(ndi, name)(a.astype(np.int64), **kw)
                want = np.clip(want, info.min, info.max).astype(a.dtype)
            else:
                want = getattr(ndi, name)(a, **kw)
            got = getattr(morphology, name)(a, **kw)
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {mode}")


def test_grey_morphology_modes_per_axis_axes_and_3d():
    a = _image(np.float32, (4, 9, 10), seed=3)
    for name in ("grey_erosion", "grey_dilation", "grey_closing"):
        fn, ref = getattr(morphology, name), getattr(ndi, name)
        kw = {"size": (3, 2), "mode": ["nearest", "wrap"], "axes": (2, 1), "origin": (0, -1)}
        np.testing.assert_array_equal(fn(a, **kw), ref(a, **kw), err_msg=name)
        kw = {"footprint": ODD, "axes": (0, 2), "mode": "mirror"}
        np.testing.assert_array_equal(fn(a, **kw), ref(a, **kw), err_msg=name)
    # a non-flat structure: in float64, rounded once (scipy adds all but the first tap in
    # float32 for float32 data: an ulp apart), so scipy's float64 result rounded
    kw = {"structure": np.arange(8.0).reshape(2, 2, 2) / 7, "mode": "constant", "cval": -1}
    f64 = a.astype(np.float64)
    for name in ("grey_erosion", "grey_dilation"):
        np.testing.assert_array_equal(getattr(morphology, name)(a, **kw),
                                      getattr(ndi, name)(f64, **kw).astype(np.float32))
    closed = ndi.grey_erosion(ndi.grey_dilation(f64, **kw).astype(np.float32).astype(np.float64),
                              **kw).astype(np.float32)
    np.testing.assert_array_equal(morphology.grey_closing(a, **kw), closed)


def test_grey_morphology_of_nan_bool_and_outputs():
    f = sample((9, 12), np.float64, seed=5)
    f[3, 4] = np.nan
    got = morphology.grey_erosion(f, size=3)
    assert np.isnan(got[2:5, 3:6]).all() and np.isnan(got).sum() == 9  # (NaN wins: filters)
    s = np.array([[0, -np.inf, 0], [1, -0.0, np.inf], [0.5, 2, -3]])  # (infinite offsets)
    g = sample((9, 12), np.float64, seed=8)
    for name in ("grey_erosion", "grey_dilation"):
        np.testing.assert_array_equal(getattr(morphology, name)(g, structure=s),
                                      getattr(ndi, name)(g, structure=s), err_msg=name)
    b = sample((9, 12), np.uint8, seed=6) > 128
    for name in ("grey_erosion", "grey_dilation", "white_tophat", "black_tophat"):
        np.testing.assert_array_equal(getattr(morphology, name)(b, size=3),
                                      getattr(ndi, name)(b, size=3), err_msg=name)
    a = _image(np.int16)
    out = np.zeros(a.shape, np.float32)
    assert morphology.morphological_gradient(a, size=3, output=out) is out
    np.testing.assert_array_equal(out, ndi.morphological_gradient(a, size=3).astype(np.float32))
    # beyond the output's type: the filters' rule (scipy wraps: 20 - 255 in uint8 is 21)
    u = np.array([[0, 0, 255, 0, 0]], np.uint8)
    np.testing.assert_array_equal(morphology.morphological_laplace(u, size=(1, 3)),
                                  [[0, 255, 0, 255, 0]])
    np.testing.assert_array_equal(morphology.morphological_laplace(u, size=(1, 3),
                                                                   output=np.int16),
                                  [[0, 255, -255, 255, 0]])


@pytest.mark.parametrize("name", ["grey_erosion", "morphological_gradient", "black_tophat"])
def test_grey_morphology_on_dask_equals_numpy(name):
    a = _image(np.uint8, (13, 17), seed=7)
    x = da.from_array(a, chunks=((4, 1, 6, 2), (2, 9, 6)))
    for window in ({"size": (3, 4)}, {"footprint": CROSS}, {"structure": STRUCTURE}):
        lazy = getattr(morphology, name)(x, **window, mode="mirror")
        assert isinstance(lazy, da.Array)
        np.testing.assert_array_equal(lazy.compute(),
                                      getattr(morphology, name)(a, **window, mode="mirror"))


BINARY = ["binary_erosion", "binary_dilation", "binary_opening", "binary_closing"]


def _blobs(shape=(16, 19), seed=0):
    rng = np.random.default_rng(seed)
    return ndi.uniform_filter(rng.random(shape), 3) > 0.5


@pytest.mark.parametrize("name", BINARY)
def test_binary_morphology_equals_scipy(name):
    a = _blobs()
    fn, ref = getattr(morphology, name), getattr(ndi, name)
    box = np.ones((3, 3), bool)
    for kw in ({}, {"structure": box}, {"structure": ODD, "origin": (-1, 0)},
               {"iterations": 2}, {"iterations": 0, "structure": box},
               {"iterations": -1}, {"border_value": 1}, {"border_value": 1, "iterations": 3},
               {"structure": np.ones((1, 3), bool), "iterations": 2, "origin": (0, 1)}):
        np.testing.assert_array_equal(fn(a, **kw), ref(a, **kw), err_msg=f"{name} {kw}")
    mask = _blobs(seed=1) | _blobs(seed=2)
    steps = {"binary_opening": ("binary_erosion", "binary_dilation"),
             "binary_closing": ("binary_dilation", "binary_erosion")}.get(name, (name,))
    for m, iterations in ((mask, 1), (mask, 0), (mask.astype(np.int8), 2)):
        # (a copy each: scipy's iterated erosion writes into an int8 mask it is given, which
        # its opening and closing then pass to their second step)
        want = a
        for step in steps:
            want = getattr(ndi, step)(want, mask=m.copy(), iterations=iterations)
        np.testing.assert_array_equal(fn(a, mask=m.copy(), iterations=iterations), want,
                                      err_msg=f"{name} mask {iterations}")
    # non-bool input (non-zero is True, NaN too), another output type, axes of a stack
    f = np.where(a, 2.5, 0.0)
    f[0, 0] = np.nan
    np.testing.assert_array_equal(fn(f), ref(f))
    out = np.zeros(a.shape, np.int8)
    assert fn(a, output=out) is out
    np.testing.assert_array_equal(out, ref(a).astype(np.int8))
    stack = np.stack([a, _blobs(seed=3)])
    np.testing.assert_array_equal(fn(stack, structure=CROSS, axes=(1, 2)),
                                  ref(stack, structure=CROSS, axes=(1, 2)))
    np.testing.assert_array_equal(fn(stack), ref(stack))


def test_binary_morphology_on_dask_equals_numpy():
    a = _blobs((13, 17), seed=4)
    x = da.from_array(a, chunks=((4, 1, 6, 2), (2, 9, 6)))
    mask = _blobs((13, 17), seed=5)
    for name in BINARY:
        for kw in ({}, {"iterations": 3, "border_value": 1}, {"mask": mask, "iterations": 2},
                   {"mask": da.from_array(mask, chunks=6)}):
            lazy = getattr(morphology, name)(x, **kw)
            assert isinstance(lazy, da.Array)
            host = {k: (mask if k == "mask" else v) for k, v in kw.items()}
            np.testing.assert_array_equal(lazy.compute(), getattr(ndi, name)(a, **host),
                                          err_msg=f"{name} {kw}")


def test_structures_as_scipy():
    for rank in range(4):
        for conn in range(-1, rank + 2):
            np.testing.assert_array_equal(morphology.generate_binary_structure(rank, conn),
                                          ndi.generate_binary_structure(rank, conn))
    for s in (CROSS, np.ones((3, 3)), ODD, np.ones((3,), bool)):
        for it in (0, 1, 2, 3):
            np.testing.assert_array_equal(morphology.iterate_structure(s, it),
                                          ndi.iterate_structure(s, it))
    got, origin = morphology.iterate_structure(CROSS, 3, origin=(1, -1))
    want, want_origin = ndi.iterate_structure(CROSS, 3, origin=(1, -1))
    np.testing.assert_array_equal(got, want)
    assert list(origin) == list(want_origin)


def test_bad_arguments_raise_scipys_types():
    a = _blobs()
    for call, err in [
            (lambda: morphology.grey_erosion(a), ValueError),
            (lambda: morphology.grey_dilation(a), ValueError),
            (lambda: morphology.grey_erosion(a, structure=np.ones(3)), RuntimeError),
            (lambda: morphology.grey_erosion(a.astype(complex), structure=CROSS), TypeError),
            (lambda: morphology.grey_erosion(a, footprint=CROSS, structure=np.ones((2, 2))),
             RuntimeError),
            (lambda: morphology.binary_erosion(a, structure=np.ones(3)), RuntimeError),
            (lambda: morphology.binary_erosion(a, mask=a[:3]), RuntimeError),
            (lambda: morphology.binary_erosion(a, iterations=1.5), TypeError),
            (lambda: morphology.binary_dilation(a.astype(complex)), TypeError),
            (lambda: morphology.binary_erosion(a, structure=np.ones((0, 3))), RuntimeError),
            (lambda: morphology.binary_erosion(a, origin=(5, 0)), ValueError),
            (lambda: morphology.binary_erosion(a, border_value=1.0), TypeError),
            (lambda: morphology.binary_erosion(a, structure=2.0), TypeError),  # (dask-image)
            (lambda: morphology.binary_erosion(a, structure=2.0), RuntimeError)]:  # (scipy)
        with pytest.raises(err):
            call()
    with pytest.raises(StencilError, match="Dask") as err:
        morphology.binary_erosion(da.from_array(a, chunks=5), iterations=0)
    assert isinstance(err.value, NotImplementedError)  # (as dask-image)
    assert issubclass(StencilArgumentError, RuntimeError) and issubclass(StencilTypeError,
                                                                         TypeError)


def test_binary_morphology_of_an_empty_structure_and_empty_arrays():
    a = _blobs()
    none = np.zeros((3, 3), bool)
    for name in ("binary_erosion", "binary_dilation"):
        np.testing.assert_array_equal(getattr(morphology, name)(a, none),
                                      getattr(ndi, name)(a, none))
    for name in BINARY + GREY[:2]:
        kw = {} if name.startswith("binary") else {"size": 3}
        got = getattr(morphology, name)(np.zeros((0, 4)), **kw)
        assert got.shape == (0, 4) and got.dtype == getattr(ndi, name)(np.zeros((0, 4)),
                                                                        **kw).dtype


def test_morphology_on_device_arrays():
    """Device arrays (numba's simulator without a GPU): the same generated kernels on the CUDA
    backend, device arrays back, the CPU's results (the iterations until nothing changes
    compare on the host)."""
    import stencilkit as sk

    if not sk.cuda_available():
        pytest.skip("no CUDA")
    from numba import cuda

    a = _image(np.uint8)
    for name, kw in (("morphological_gradient", {"size": (3, 2)}),
                     ("grey_opening", {"structure": STRUCTURE, "mode": "constant"})):
        got = getattr(morphology, name)(cuda.to_device(a), **kw)
        assert not isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got.copy_to_host(), getattr(morphology, name)(a, **kw))
    b = _blobs()
    mask = _blobs(seed=1) | _blobs(seed=2)
    for kw in ({"iterations": 0}, {"mask": cuda.to_device(mask), "iterations": 2}):
        got = morphology.binary_erosion(cuda.to_device(b), **kw)
        host = {k: (mask if k == "mask" else v) for k, v in kw.items()}
        np.testing.assert_array_equal(got.copy_to_host(), ndi.binary_erosion(b, **host))
    got = morphology.binary_fill_holes(cuda.to_device(b))
    np.testing.assert_array_equal(got.copy_to_host(), ndi.binary_fill_holes(b))


def test_morphology_on_the_cpp_path(fake_gpu):
    """The CUDA C++ path (tests/cpp_host.py: the generated modules built for the host, a
    stand-in CuPy): the kernels of a non-flat structure, the compositions' sums, the input's
    truth and an iteration's mask, each the CPU's result bit for bit."""
    a = _image(np.uint8)
    f = sample((11, 14), np.float32, seed=9)
    for x, name, kw in ((a, "white_tophat", {"structure": STRUCTURE, "mode": "constant"}),
                        (a, "morphological_laplace", {"size": 3, "output": np.int16}),
                        (f, "grey_closing", {"structure": STRUCTURE / 3, "mode": "wrap"})):
        got = getattr(morphology, name)(fake_gpu.asarray(x), **kw)
        np.testing.assert_array_equal(got.get(), getattr(morphology, name)(x, **kw),
                                      err_msg=name)
    b = _blobs()
    mask = _blobs(seed=1) | _blobs(seed=2)
    for name, kw in (("binary_erosion", {"iterations": 0}),
                     ("binary_closing", {"mask": mask, "iterations": 2, "border_value": 1}),
                     ("binary_fill_holes", {})):
        dkw = {k: (fake_gpu.asarray(v) if k == "mask" else v) for k, v in kw.items()}
        got = getattr(morphology, name)(fake_gpu.asarray(np.where(b, 3.5, 0.0)), **dkw)
        np.testing.assert_array_equal(got.get(), getattr(ndi, name)(b, **kw), err_msg=name)
    assert fake_gpu.compiled > 0  # (the generated C++, not the numba.cuda fallback)


def test_hit_or_miss_equals_scipy():
    a = _blobs()
    corner = np.array([[0, 1, 0], [0, 1, 1], [0, 0, 0]], bool)
    for kw in ({}, {"structure1": corner}, {"structure1": corner, "structure2": ~corner,
                                             "origin1": (1, 0), "origin2": (0, -1)},
               {"structure1": np.ones((1, 2), bool), "axes": (1, 0)}):
        np.testing.assert_array_equal(morphology.binary_hit_or_miss(a, **kw),
                                      ndi.binary_hit_or_miss(a, **kw), err_msg=str(kw))
    x = da.from_array(a, chunks=((4, 1, 6, 5), (2, 9, 8)))
    np.testing.assert_array_equal(morphology.binary_hit_or_miss(x, corner).compute(),
                                  ndi.binary_hit_or_miss(a, corner))
    out = np.zeros(a.shape, np.uint8)
    assert morphology.binary_hit_or_miss(a, corner, output=out) is out
    np.testing.assert_array_equal(out, ndi.binary_hit_or_miss(a, corner))
    for v in (True, False):  # (0-d, as scipy)
        assert morphology.binary_hit_or_miss(np.array(v)) == ndi.binary_hit_or_miss(np.array(v))


def test_binary_structures_run_along_the_axes_in_increasing_order():
    """A structure's dimensions run along the filtered axes in increasing order, whatever order
    ``axes`` lists them in (scipy's rule), a box's too (the minimum filter pairs a box's sizes
    with axes as given); origins pair with axes as given when fewer than all are filtered, and
    a dilation's even-length adjustment goes with the axis of that length (scipy pairs it by
    position and, for axes out of order, reads outside its window)."""
    a = _blobs()
    stack = np.stack([a, _blobs(seed=3)])
    box = np.ones((1, 2), bool)
    for name in ("binary_erosion", "binary_dilation"):
        fn, ref = getattr(morphology, name), getattr(ndi, name)
        for s in (box, ODD):
            np.testing.assert_array_equal(fn(a, s, axes=(1, 0), origin=(0, -1)),
                                          ref(a, s, axes=(1, 0), origin=(0, -1)))
        np.testing.assert_array_equal(fn(stack, box, axes=(2, 1), origin=(-1, 0)),
                                      fn(stack, box, axes=(1, 2), origin=(0, -1)))
        np.testing.assert_array_equal(fn(stack, box, axes=(1, 2), origin=(0, -1)),
                                      ref(stack, box, axes=(1, 2), origin=(0, -1)))


def test_propagation_and_fill_holes_equal_scipy():
    """Until nothing changes: on NumPy arrays by a breadth-first growth (each element once),
    for every structure holding its centre; passes otherwise (and on device arrays)."""
    a = _blobs((30, 33))
    mask = _blobs((30, 33), seed=1) | _blobs((30, 33), seed=2)
    ring = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)  # (no centre: the passes)
    for kw in ({}, {"structure": np.ones((3, 3))}, {"structure": ODD, "origin": (-1, 0)},
               {"axes": (1,)}, {"structure": ring}):
        np.testing.assert_array_equal(morphology.binary_fill_holes(a, **kw),
                                      ndi.binary_fill_holes(a, **kw), err_msg=f"fill {kw}")
        for extra in ({}, {"border_value": 1}):
            np.testing.assert_array_equal(
                morphology.binary_propagation(a, mask=mask, **kw, **extra),
                ndi.binary_propagation(a, mask=mask, **kw, **extra), err_msg=f"prop {kw}")
    for name in ("binary_erosion", "binary_dilation"):  # (the growth behind iterations < 1)
        for kw in ({"border_value": 1}, {"mask": mask, "structure": ODD, "origin": (0, -1)}):
            np.testing.assert_array_equal(getattr(morphology, name)(a, iterations=0, **kw),
                                          getattr(ndi, name)(a, iterations=0, **kw))
    f = np.asfortranarray(a)  # (the growth works on a C-ordered copy)
    for name in ("binary_erosion", "binary_dilation"):
        np.testing.assert_array_equal(getattr(morphology, name)(f, iterations=0),
                                      getattr(ndi, name)(a, iterations=0))
        np.testing.assert_array_equal(getattr(morphology, name)(a[:, ::-2], iterations=0),
                                      getattr(ndi, name)(a[:, ::-2], iterations=0))
    stack = np.stack([a, ~a])
    np.testing.assert_array_equal(morphology.binary_fill_holes(stack, axes=(1, 2)),
                                  ndi.binary_fill_holes(stack, axes=(1, 2)))
    out = np.zeros(a.shape, np.uint8)
    assert morphology.binary_fill_holes(a, output=out) is out
    np.testing.assert_array_equal(out, ndi.binary_fill_holes(a))
    for v in (True, False):
        assert morphology.binary_fill_holes(np.array(v)) == ndi.binary_fill_holes(np.array(v))
    with pytest.raises(NotImplementedError, match="Dask"):
        morphology.binary_fill_holes(da.from_array(a, chunks=10))


def test_output_aliasing_the_input_byte_order_and_read_only_input():
    a = _image(np.int16)
    for name in ("grey_opening", "white_tophat", "morphological_gradient"):
        x = a.copy()
        assert getattr(morphology, name)(x, size=3, output=x) is x
        np.testing.assert_array_equal(x, getattr(ndi, name)(a, size=3), err_msg=name)
    b = _blobs()
    for name in ("binary_erosion", "binary_closing", "binary_fill_holes"):
        x = b.copy()
        assert getattr(morphology, name)(x, output=x) is x
        np.testing.assert_array_equal(x, getattr(ndi, name)(b), err_msg=name)
    f = sample((11, 14), np.float32, seed=2)
    np.testing.assert_array_equal(morphology.grey_erosion(f.astype(">f4"), structure=STRUCTURE),
                                  ndi.grey_erosion(f, structure=STRUCTURE))
    ro = b.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(morphology.binary_fill_holes(ro), ndi.binary_fill_holes(b))
