"""Regions: how a tile or chunk of the output gets the input it needs, exactly, at any edge.

Both the Dask backend (a region per chunk) and temporal blocking on NumPy (a region per
cache-sized tile) compute an output block from a *region* of the input: the block plus a halo
along every split core axis, advanced ``steps`` times by the kernel, of which only the centre is
kept. The layout below makes that equal bit for bit to applying the kernel to the whole array
step by step, for every boundary mode and any block sizes (blocks smaller than the halo too):

* ``wrap``: the region is indexed by the periodic map of the global indices
  ``start - before*steps ... stop + after*steps``, so an edge block receives the far end of the
  array. A periodic extension stays periodic under any stencil: exact for any number of steps.
* every other mode: the region reaches the larger radius times ``steps`` on *both* sides and is
  clipped to the array. Where it is clipped, its end is the array's edge, and the kernel applies
  the mode there exactly as on the whole array, at every step. A reflection turns a read
  ``before`` elements past the edge into one at most ``before`` elements inside, which the
  symmetric halo holds even for a one-element edge block (the test that asked for it: mirror
  mode, an asymmetric kernel, one-element chunks). Where the region is not clipped, no centre
  element depends on what lies past its end.
"""

from __future__ import annotations

import numpy as np

from . import modes


def global_map(index: np.ndarray, n: int, mode: int) -> np.ndarray:
    """NumPy twin of the compiled ``_sk_map`` (modes.MAP_SOURCE) for a vector of indices."""
    index = np.asarray(index, dtype=np.int64)
    inside = (index >= 0) & (index < n)
    if mode == modes.REFLECT:
        k = index % (2 * n)
        mapped = np.where(k < n, k, 2 * n - 1 - k)
    elif mode == modes.MIRROR:
        if n == 1:
            mapped = np.zeros_like(index)
        else:
            k = index % (2 * n - 2)
            mapped = np.where(k < n, k, 2 * n - 2 - k)
    elif mode == modes.NEAREST:
        mapped = np.clip(index, 0, n - 1)
    elif mode == modes.WRAP:
        mapped = index % n
    else:
        raise ValueError(mode)  # pragma: no cover - the other modes are clipped, not mapped
    return np.where(inside, index, mapped)


def axis_regions(chunks, n: int, before: int, after: int, mode: int):
    """For each block along one axis: (global indices of its region, centre slice in it).

    ``before``/``after`` are the halo per side for all the steps (radius times steps).
    """
    bounds = np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)
    out = []
    for j, size in enumerate(chunks):
        s, e = int(bounds[j]), int(bounds[j + 1])
        if mode == modes.WRAP:
            index = global_map(np.arange(s - before, e + after), n, mode)
            centre = slice(before, before + size)
        else:
            reach = max(before, after)
            lo, hi = max(s - reach, 0), min(e + reach, n)
            index = np.arange(lo, hi)
            centre = slice(s - lo, s - lo + size)
        out.append((index, centre))
    return out


def auto_block_steps(radius, core_chunks, steps: int, cap: int | None = None) -> int:
    """Steps per halo exchange, for temporal blocking.

    As many as keep the halo within half the smallest block of every split core axis (at least
    1, at most ``steps`` and ``cap``); ``core_chunks[d]`` are the block sizes along core axis d.
    """
    best = steps if cap is None else min(steps, cap)
    for axis_chunks, (before, after) in zip(core_chunks, radius):
        reach = max(before, after)
        if len(axis_chunks) > 1 and reach:
            best = min(best, max(1, min(axis_chunks) // (2 * reach)))
    return max(1, best)
