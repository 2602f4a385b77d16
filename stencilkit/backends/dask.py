"""Dask backend: a stencil over a chunked array, equal bit for bit to the NumPy result.

Each output chunk is computed by the CPU backend from one *region* of the input: the chunk plus
a halo along every split core axis, gathered from whichever input chunks hold it, with the kernel
applied ``steps`` times (temporal blocking for ``iterate``: one halo exchange for several steps)
and only the region's centre kept. :mod:`stencilkit._regions` says how a region is laid out so
that every boundary mode stays exact at the array's edges, whatever the chunking.

Core axes held in one chunk need no gathering; a stack whose frames are whole chunks (the
classic Dask use) maps the kernel over the blocks directly. There is no halo along batch axes.

Chunks that are CuPy arrays (a Dask array whose ``_meta`` is a CuPy array) are gathered into
CuPy regions, so each region runs on the CUDA backend; the result's chunks are CuPy arrays too.

Chunks run the serial kernel: Dask's threads already use the cores, and one thread pool inside
another oversubscribes them (and numba's default threading layer aborts on concurrent parallel
launches, numba issue 9288).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import _regions, modes
from .._errors import StencilError
from .._regions import axis_regions
from . import Backend, is_dask_array, is_device_array

try:  # the backend is only imported for Dask inputs; stencilkit does not require Dask
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
except ImportError:  # pragma: no cover - exercised only without dask
    da = None


def _runs(src_chunk: np.ndarray, local: np.ndarray):
    """Split gathered positions into runs of one source chunk with unit (+1/-1) steps.

    Yields ``(chunk, source slice, destination slice)``: slices, not index arrays, so even a
    reflected edge is copied with basic indexing.
    """
    start = 0
    n = len(local)
    while start < n:
        stop = start + 1
        step = 0
        while stop < n and src_chunk[stop] == src_chunk[start]:
            d = local[stop] - local[stop - 1]
            if d not in (1, -1) or (step and d != step):
                break
            step = d
            stop += 1
        step = step or 1
        first, last = int(local[start]), int(local[stop - 1])
        if step == 1:
            src = slice(first, last + 1)
        else:
            src = slice(first, None if last == 0 else last - 1, -1)
        yield int(src_chunk[start]), src, slice(start, stop)
        start = stop


def _axis_plan(chunks: tuple, n: int, before: int, after: int, mode: int):
    """Per output chunk along one core axis: (region length, centre slice, pieces)."""
    bounds = np.concatenate([[0], np.cumsum(chunks)])
    plans = []
    for index, centre in axis_regions(chunks, n, before, after, mode):
        src_chunk = np.searchsorted(bounds, index, side="right") - 1
        local = index - bounds[src_chunk]
        plans.append((len(index), centre, list(_runs(src_chunk, local))))
    return plans


class Program:
    """What runs on each region.

    Either ``steps`` applications of one Stencil (the first array fed back, the others fixed)
    or a chain of single-input stencils. Picklable, for workers in other processes.
    """

    def __init__(self, stages, steps=1):
        self.stages = stages  # [(stencil, params, options)]
        self.steps = steps

    def __call__(self, *regions):
        """Run on the regions (one per input array) and return the whole result."""
        if len(self.stages) == 1:
            st, params, opts = self.stages[0]
            if self.steps == 1:
                return st(*regions, *params, **opts)
            # block_steps=1: the region is this task's whole work; no tiling pool inside Dask.
            return st.iterate(*regions, *params, steps=self.steps, block_steps=1, **opts)
        (x,) = regions
        for st, params, opts in self.stages:
            x = st(x, *params, **opts)
        return x

    def __dask_tokenize__(self):
        return ("stencilkit.Program", [(st._source, st.options, p, o) for st, p, o in self.stages],
                self.steps)


def block_options(overrides) -> dict:
    """Per-region call options: core axes are already last, and each chunk runs serially.

    ``target="cuda"`` stays: each NumPy region is then copied to the GPU, computed there and
    copied back (CuPy chunks run on the GPU without it).
    """
    opts = {k: v for k, v in overrides.items() if k not in ("parallel", "axes")}
    opts["parallel"] = False
    return opts


def _apply(st, arrays, params, overrides, steps: int = 1):
    """Apply Stencil ``st`` ``steps`` times (feeding back the first array) to Dask arrays.

    Other inputs may be NumPy arrays. Returns a lazy Dask array with the first array's chunks.
    """
    if da is None:  # pragma: no cover
        raise ImportError("stencilkit's Dask backend needs dask: pip install 'dask[array]'")
    arrays = [a if is_dask_array(a) else da.asarray(a) for a in arrays]
    plan = st._plan(arrays, None, overrides)
    k = st.ndim
    if plan.moved:
        arrays = [da.moveaxis(a, plan.axes, range(-k, 0)) for a in arrays]
    halo = [(b * steps, a * steps) for b, a in st.radius]
    program = Program([(st, tuple(params), block_options(overrides))], steps)
    result = run_program(program, arrays, k, halo, plan.mode, plan.out_dtype)
    if plan.moved:
        result = da.moveaxis(result, range(-k, 0), plan.axes)
    return result


def run_program(program, arrays, k, halo, mode, out_dtype):
    """Run ``program`` on a region per chunk of ``arrays`` (core axes last).

    ``halo[d]`` is (before, after) along core axis d; regions are laid out by
    :func:`stencilkit._regions.axis_regions` for ``mode``.
    """
    first = arrays[0]
    arrays = [first] + [a.rechunk(first.chunks) for a in arrays[1:]]
    ndim = first.ndim
    nbatch = ndim - k
    axis_plans = []
    for d in range(ndim):
        chunks = first.chunks[d]
        if d < nbatch or len(chunks) == 1:
            axis_plans.append(None)  # batch axis or whole core axis: blocks are used as they are
        else:
            before, after = halo[d - nbatch]
            axis_plans.append(_axis_plan(chunks, first.shape[d], before, after, mode))
    meta = np.empty_like(first._meta, shape=(0,) * ndim, dtype=out_dtype)  # NumPy or CuPy
    if all(p is None for p in axis_plans):
        return da.map_blocks(program, *arrays, dtype=out_dtype, meta=meta)
    return _gathered(program, arrays, axis_plans, meta)


def _gather_apply(program, shape, dtypes, centre, sels, *blocks_per_array):
    """Assemble each input's region from its source pieces, run the program, keep the centre.

    ``sels[i]`` is the (source, destination) selection of the i-th source block of every array.
    """
    regions = []
    for dtype, blocks in zip(dtypes, blocks_per_array):
        # empty_like: a CuPy chunk gets a CuPy region (NumPy's array-function dispatch), which
        # the program then runs on the CUDA backend
        region = np.empty_like(blocks[0], shape=shape, dtype=dtype)
        for block, (src, dst) in zip(blocks, sels):
            region[dst] = block[src]
        regions.append(region)
    return _contiguous(program(*regions)[centre])


def _contiguous(a):
    """A C-contiguous copy where needed, in the array's own library (NumPy or CuPy chunks)."""
    if isinstance(a, np.ndarray):
        return np.ascontiguousarray(a)
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy.ascontiguousarray(a)
    return a


def _gathered(program, arrays, axis_plans, meta):
    first = arrays[0]
    ndim = first.ndim
    name = "stencil-" + tokenize(program, *arrays)
    dsk = {}
    per_axis = []
    for d in range(ndim):
        if axis_plans[d] is None:
            per_axis.append([
                (size, slice(None), [(j, slice(None), slice(None))])
                for j, size in enumerate(first.chunks[d])
            ])
        else:
            per_axis.append(axis_plans[d])
    dtypes = [a.dtype for a in arrays]
    for out_index in itertools.product(*(range(len(c)) for c in first.chunks)):
        axes = [per_axis[d][j] for d, j in enumerate(out_index)]
        shape = tuple(a[0] for a in axes)
        centre = tuple(a[1] for a in axes)
        combos = list(itertools.product(*(a[2] for a in axes)))
        # Keys go in plain lists (Dask substitutes those); slices stay in a separate literal.
        sels = [(tuple(c[1] for c in combo), tuple(c[2] for c in combo)) for combo in combos]
        keys = [[(arr.name, *(c[0] for c in combo)) for combo in combos] for arr in arrays]
        dsk[(name, *out_index)] = (_gather_apply, program, shape, dtypes, centre, sels, *keys)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=arrays)
    return da.Array(graph, name, first.chunks, meta=meta)


def _saturate_chunk(x, dtype):
    """One chunk of :meth:`DaskBackend.saturate`, by the chunk's backend (NumPy or CuPy)."""
    from . import select

    return select((x,)).saturate(x, dtype)


def _halo(passes, ndim):
    """(before, after) per axis: how far the passes reach, all of them together."""
    halo = [(0, 0)] * ndim
    for p in passes.passes:
        for axis, reach in p.reach(ndim).items():
            halo[axis] = reach
    return halo


class RegionPasses:
    """A filter's line passes over one region, run by the region's own backend.

    For device chunks (CuPy): each region goes through ``CudaBackend.run_passes``, so Dask
    stacks of device chunks get the CUDA backend's one-sweep, box and median kernels (NumPy
    chunks keep the CPU's ``LineProgram``). Regions are laid out for ``passes.mode``
    (:mod:`stencilkit._regions`), so the passes' mode on a region is exact at the array's edges.
    """

    def __init__(self, passes):
        self.passes = passes

    def __call__(self, region, out=None):
        from . import for_array

        return for_array(region).run_passes(self.passes, region, None)

    def __dask_tokenize__(self):
        p = self.passes
        return ("stencilkit.region-passes", repr(p.passes), p.mode, p.cval, p.out_dtype.str)


class DaskBackend(Backend):
    """Dask arrays: a region per chunk (the chunk and its halo).

    Each region runs on the backend of the chunks' type (NumPy chunks: the CPU backend; CuPy
    chunks: the CUDA backend).
    """

    name = "dask"
    input_kind = "Dask"
    lazy = True

    def keeps(self, a):
        return is_dask_array(a)

    def to_host(self, a):
        return np.asarray(a)

    def zeros(self, shape, dtype, like):
        return da.zeros(shape, dtype=dtype, chunks=like.chunks) if like.size else \
            like.astype(dtype)

    def saturate(self, a, dtype, out=None):
        # each chunk by its own backend's rule (NumPy chunks: the CPU's compiled pass)
        return a.map_blocks(_saturate_chunk, np.dtype(dtype), dtype=dtype)

    def apply(self, st, arrays, params, out, overrides, steps=1):
        if out is not None:
            raise StencilError(
                f"{st._where}: out= is not supported for Dask arrays (the result is lazy); "
                "store the result with dask.array.store or result.to_zarr(...)"
            )
        host = st._check_arrays(arrays, params, out, self)
        for name, a in zip(st._spec.arrays, host):
            if any(math.isnan(n) for n in a.shape):
                raise StencilError(
                    f"{st._where}: array {name!r} has unknown chunk sizes {a.shape}; call "
                    ".compute_chunk_sizes() on it first"
                )
        return _apply(st, host, params, overrides, steps=steps)

    def iterate(self, st, arrays, params, out, overrides, steps, block_steps):
        state = arrays[0]
        if not is_dask_array(state):
            ref = next(a for a in arrays if is_dask_array(a))
            state = da.from_array(np.asarray(state), chunks=ref.chunks)
        host = st._check_arrays([state, *arrays[1:]], params, out, self)
        out_dtype = st._plan(host, None, overrides).out_dtype
        if out is not None or out_dtype != state.dtype.newbyteorder("="):
            raise StencilError(
                f"{st._where}: iterate on Dask arrays needs out=None and an output dtype equal "
                f"to {st._spec.arrays[0]!r}'s ({state.dtype}; the result's is {out_dtype})"
            )
        if not steps:
            return state
        if block_steps is None:
            axes = st._axes(overrides, state.ndim)
            block_steps = _regions.auto_block_steps(
                st.radius, [state.chunks[a] for a in axes], steps
            )
        remaining = steps
        while remaining:
            n = min(block_steps, remaining)
            state = self.apply(st, [state, *arrays[1:]], params, out, overrides, steps=n)
            remaining -= n
        return state

    def explain(self, st, what, arrays, params, overrides):
        return (f"{what}: the Dask backend; each chunk's region (halo {st.radius}) runs "
                "on the backend its chunks' type selects")

    def apply_chain(self, chain, x):
        """A :class:`stencilkit.Chain` over the Dask array ``x``: one halo exchange in all."""
        for st, _ in chain.stages:
            if st.options["axes"] is not None:
                raise StencilError(f"chain: stage {st._where} sets axes=; chains use the last "
                                   f"{chain.ndim} axes as core axes")
        stage_modes = [modes.mode_code(st.options["mode"]) for st, _ in chain.stages]
        wraps = [m == modes.WRAP for m in stage_modes]
        if any(wraps) and not all(wraps):
            # A periodic region is exact only when every stage is periodic: apply stage by stage.
            for st, params in chain.stages:
                x = st(x, *params)
            return x
        dtype = chain.out_dtype(x.shape, x.dtype)  # validates every stage on its input dtype
        if all(wraps):
            halo, mode = chain.radius, modes.WRAP
        else:
            reach = [sum(max(st.radius[d]) for st, _ in chain.stages) for d in range(chain.ndim)]
            halo, mode = [(r, r) for r in reach], modes.REFLECT  # any clipped layout
        program = Program([(st, params, block_options({})) for st, params in chain.stages])
        return run_program(program, [x], chain.ndim, halo, mode, np.dtype(dtype))

    # -- the library ---------------------------------------------------------------------------

    def run_passes(self, passes, arr, out):
        from .cpu_lines.program import LineProgram

        # CuPy chunks: each region through the CUDA backend's passes
        program = RegionPasses(passes) if is_device_array(getattr(arr, "_meta", None)) else \
            LineProgram(passes)
        return run_program(program, [arr], arr.ndim, _halo(passes, arr.ndim),
                           modes.mode_code(passes.mode), passes.out_dtype)

    def rank_kernel(self, passes, arr, out):
        # CuPy chunks: each region through the CUDA backend's passes, so its small-median and
        # box-extreme kernels (NumPy chunks: None, the generated stencil over the chunks)
        if is_device_array(getattr(arr, "_meta", None)):
            return self.run_passes(passes, arr, out)
        return None

    def block_reduce(self, arr, full, op, edge, cval, out_dtype):
        from . import select

        if edge == "trim":
            arr = arr[tuple(slice(0, (n // f) * f) for n, f in zip(arr.shape, full))]
        chunks = []
        for n, f, c in zip(arr.shape, full, arr.chunks):
            if f == 1:
                chunks.append(c)
                continue
            size = max(f, (max(c) // f) * f)  # chunks of whole blocks, near the original size
            chunks.append(tuple([size] * (n // size) + ([n % size] if n % size else [])) or (0,))
        arr = arr.rechunk(tuple(chunks))
        out_chunks = tuple(tuple(-(-c // f) for c in cs) for cs, f in zip(arr.chunks, full))

        def block(x):  # each chunk on its own backend (NumPy or CuPy chunks)
            return select((x,)).block_reduce(x, full, op, edge, cval, out_dtype)

        return da.map_blocks(block, arr, chunks=out_chunks, dtype=out_dtype,
                             meta=np.empty_like(arr._meta, shape=(0,) * arr.ndim,
                                                dtype=out_dtype))

    def decimate(self, arr, full):
        return arr[tuple(slice(None, None, f) for f in full)]


BACKEND = DaskBackend()
