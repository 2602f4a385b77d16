"""Dask backend: a stencil over a chunked array, equal bit for bit to the NumPy result.

Each output chunk is computed by the CPU backend from one *region* of the input: the chunk plus
a halo along every split core axis, gathered from whichever input chunks hold it, with the kernel
applied ``steps`` times (temporal blocking for ``iterate``: one halo exchange for several steps)
and only the region's centre kept. :mod:`stencilkit._regions` says how a region is laid out so
that every boundary mode stays exact at the array's edges, whatever the chunking.

Core axes held in one chunk need no gathering; a stack whose frames are whole chunks (the
classic Dask use) maps the kernel over the blocks directly. There is no halo along batch axes.

Chunks run the serial kernel: Dask's threads already use the cores, and one thread pool inside
another oversubscribes them (and numba's default threading layer aborts on concurrent parallel
launches, numba issue 9288).
"""

from __future__ import annotations

import itertools

import numpy as np

from .._regions import axis_regions

try:  # the backend is only imported for Dask inputs; stencilkit does not require Dask
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
except ImportError:  # pragma: no cover - exercised only without dask
    da = None


def is_dask_array(a) -> bool:
    """True for a dask.array.Array (checked without importing Dask)."""
    return type(a).__module__.startswith("dask.array") and hasattr(a, "dask")


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


def apply(st, arrays, params, overrides, steps: int = 1):
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
    first = arrays[0]
    arrays = [first] + [a.rechunk(first.chunks) for a in arrays[1:]]
    ndim = first.ndim
    nbatch = ndim - k
    # Blocks arrive with the core axes last already; each chunk runs on one thread.
    call_opts = {k: v for k, v in overrides.items() if k not in ("parallel", "axes", "target")}
    call_opts["parallel"] = False

    axis_plans = []
    for d in range(ndim):
        chunks = first.chunks[d]
        if d < nbatch or len(chunks) == 1:
            axis_plans.append(None)  # batch axis or whole core axis: blocks are used as they are
        else:
            before, after = st.radius[d - nbatch]
            axis_plans.append(
                _axis_plan(chunks, first.shape[d], before * steps, after * steps, plan.mode)
            )

    out_dtype = plan.out_dtype
    if all(p is None for p in axis_plans):
        result = da.map_blocks(
            _apply_block, *arrays, st=st, params=tuple(params), opts=call_opts, steps=steps,
            dtype=out_dtype, meta=np.empty((0,) * ndim, out_dtype),
        )
    else:
        result = _gathered(st, arrays, params, call_opts, axis_plans, out_dtype, steps)
    if plan.moved:
        result = da.moveaxis(result, range(-k, 0), plan.axes)
    return result


def _apply_block(*blocks, st, params, opts, steps):
    if steps == 1:
        return st(*blocks, *params, **opts)
    return st.iterate(*blocks, *params, steps=steps, **opts)


def _gather_apply(st, params, opts, steps, shape, dtypes, centre, sels, *blocks_per_array):
    """Assemble each input's region from its source pieces, run the kernel, keep the centre.

    ``sels[i]`` is the (source, destination) selection of the i-th source block of every array.
    """
    regions = []
    for dtype, blocks in zip(dtypes, blocks_per_array):
        region = np.empty(shape, dtype)
        for block, (src, dst) in zip(blocks, sels):
            region[dst] = block[src]
        regions.append(region)
    if steps == 1:
        result = st(*regions, *params, **opts)
    else:
        result = st.iterate(*regions, *params, steps=steps, **opts)
    return np.ascontiguousarray(result[centre])


def _gathered(st, arrays, params, opts, axis_plans, out_dtype, steps):
    first = arrays[0]
    ndim = first.ndim
    name = "stencil-" + tokenize(st, *arrays, params, opts, steps)
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
        dsk[(name, *out_index)] = (
            _gather_apply, st, tuple(params), opts, steps, shape, dtypes, centre, sels, *keys,
        )
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=arrays)
    meta = np.empty((0,) * ndim, out_dtype)
    return da.Array(graph, name, first.chunks, meta=meta)
