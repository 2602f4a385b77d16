"""Separable weights over the last two axes in one sweep (:func:`sep2_pass`).

The float32 sums of 8-bit data are checked near ties (:func:`float32_tie`). 1-D weights along
an axis before the last two: :func:`outer_pass`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ... import modes
from ..._casts import widen
from ..._passes import tie_bound
from .. import cpu
from .common import _dest, _map, _sk_njit, _tile


@_sk_njit
def _sep_row(src, o, m, w, cval, ext, lou, n1):
    """ext[lou:] += w * row m of src (m < 0: a row of cval)."""
    if m >= 0:
        for c in range(n1):
            u = np.uint64(c)
            ext[u + lou] += w * src[o, m, u]
    else:
        for c in range(n1):
            u = np.uint64(c)
            ext[u + lou] += w * cval


@numba.njit(cache=True, nogil=True, parallel=True)
def _sep2(src, dst, wv, lov, wh, loh, mode, cval, band, rounding, clip_lo, clip_hi, step):
    """Separable correlation over the last two axes of (outer, n0, n1) in one sweep.

    For each output row: a vertical pass (``wv``, reaching ``lov`` rows up) into a row buffer,
    that row extended by the mode (outside the array, a column of cval, so ``cval * sum(wv)``),
    then a horizontal pass (``wh``, ``loh`` columns left), in the weights' float type; no
    intermediate array. ``rounding``: store integers rounded to nearest (ties to even) and clipped.
    ``step`` > 1 computes only every step-th row and column (a prefilter-and-decimate, as a
    pyramid level), into ``dst`` of ``ceil(n / step)`` per axis.
    """
    n_outer, n0, n1 = src.shape
    m0 = dst.shape[1]
    m1 = dst.shape[2]
    kv = wv.size
    kh = wh.size
    width = n1 + kh - 1
    bands = -(-m0 // band)
    zero = wv[0] * 0
    edge = zero + cval * wv.sum()
    for t in numba.prange(n_outer * bands):
        o = t // bands
        r0 = (t - o * bands) * band
        r1 = min(r0 + band, m0)
        ext = np.empty(width, wv.dtype)
        row = np.empty(m1, wv.dtype)
        lou = np.uint64(loh)
        for i in range(r0, r1):
            for c in range(n1):
                u = np.uint64(c)
                ext[u + lou] = zero
            # taps four at a time: each pass over the row buffer is a load and a store, so
            # folding four rows into one pass cuts that traffic (3x faster than one tap a pass)
            j = 0
            while j + 4 <= kv:
                m0_ = _map(i * step + j - lov, n0, mode)
                m1_ = _map(i * step + j + 1 - lov, n0, mode)
                m2 = _map(i * step + j + 2 - lov, n0, mode)
                m3 = _map(i * step + j + 3 - lov, n0, mode)
                if m0_ >= 0 and m1_ >= 0 and m2 >= 0 and m3 >= 0:
                    w0, w1, w2, w3 = wv[j], wv[j + 1], wv[j + 2], wv[j + 3]
                    for c in range(n1):
                        u = np.uint64(c)
                        ext[u + lou] += (w0 * src[o, m0_, u] + w1 * src[o, m1_, u]
                                         + w2 * src[o, m2, u] + w3 * src[o, m3, u])
                    j += 4
                else:
                    _sep_row(src, o, m0_, wv[j], cval, ext, lou, n1)
                    j += 1
            while j < kv:
                _sep_row(src, o, _map(i * step + j - lov, n0, mode), wv[j], cval, ext, lou,
                         n1)
                j += 1
            for p in range(loh):
                m = _map(p - loh, n1, mode)
                ext[p] = ext[m + loh] if m >= 0 else edge
            for p in range(loh + n1, width):
                m = _map(p - loh, n1, mode)
                ext[p] = ext[m + loh] if m >= 0 else edge
            for c in range(m1):
                row[np.uint64(c)] = zero
            # taps four at a time here too; column c reads ext[c * step + j ...]
            su = np.uint64(step)
            j = 0
            while j + 4 <= kh:
                w0, w1, w2, w3 = wh[j], wh[j + 1], wh[j + 2], wh[j + 3]
                ju = np.uint64(j)
                for c in range(m1):
                    u = np.uint64(c) * su + ju
                    row[np.uint64(c)] += (w0 * ext[u] + w1 * ext[u + np.uint64(1)]
                                          + w2 * ext[u + np.uint64(2)]
                                          + w3 * ext[u + np.uint64(3)])
                j += 4
            while j < kh:
                w = wh[j]
                ju = np.uint64(j)
                for c in range(m1):
                    u = np.uint64(c)
                    row[u] += w * ext[u * su + ju]
                j += 1
            if rounding:
                for c in range(m1):
                    u = np.uint64(c)
                    dst[o, i, u] = min(max(np.rint(row[u]), clip_lo), clip_hi)
            else:
                for c in range(m1):
                    u = np.uint64(c)
                    dst[o, i, u] = row[u]


def sep2_pass(src, wv, lov, wh, loh, mode, cval, out_dtype, step=1, acc=np.float64, tie=None,
              fast=True, dst=None):
    """Separable correlation (``wv`` down, ``wh`` across) over the last two axes.

    Only every ``step``-th row and column is computed (``step`` 2: a pyramid level). ``acc``:
    the float type of the sums (float32 vectors are twice as wide). Integer data with integer
    results asked in float64 may be summed in float32 with a float64 fallback (see
    :func:`float32_tie`); the integers are then those of the float64 sweep (only a float64 sum
    within float64 round-off of a half-integer could round either way, as between any two
    float64 evaluations). ``fast`` False turns that off; ``tie`` overrides the fallback's
    threshold (tests: 0 recomputes every element in float64).
    """
    out_dtype = np.dtype(out_dtype)
    n0, n1 = src.shape[-2:]
    m0, m1 = -(-n0 // step), -(-n1 // step)
    dst = _dest(dst, src.shape[:-2] + (m0, m1), out_dtype)
    if src.size == 0:
        return dst
    s = src.reshape(-1, n0, n1)
    d = dst.reshape(-1, m0, m1)
    tasks = max(1, 4 * numba.get_num_threads() // s.shape[0])
    band = max(16, -(-m0 // tasks))
    rounding = out_dtype.kind in "iub"
    lo_c, hi_c = (0.0, 1.0) if out_dtype.kind == "b" else (
        (float(np.iinfo(out_dtype).min), float(np.iinfo(out_dtype).max)) if rounding
        else (0.0, 0.0))
    wv64 = np.asarray(wv, np.float64)
    wh64 = np.asarray(wh, np.float64)
    code = modes.mode_code(mode)
    if code != modes.CONSTANT and wv64.size <= UNROLL_MAX and wh64.size <= UNROLL_MAX:
        # every window row exists (no cval rows): the generated kernel with its taps unrolled
        exact, rel = False, 0.0
        if fast and np.dtype(acc) == np.float64 and rounding and src.dtype.kind in "iub":
            bound = float32_tie(wv64, wh64, src.dtype)
            if tie is not None or bound is not None:
                acc, exact = np.float32, True
                rel, tie = bound if tie is None else (0.0, tie)
        kernel = _unrolled_sep2(wv64.size, wh64.size, np.dtype(acc).name, rounding, exact, step)
        kernel(s, d, wv64.astype(acc), lov, wh64.astype(acc), loh, code, band, lo_c, hi_c,
               np.float32(rel), np.float32(tie if exact else 1.0), wv64, wh64)
    else:
        _sep2(s, d, np.asarray(wv, acc), lov, np.asarray(wh, acc), loh, code, float(cval), band,
              rounding, lo_c, hi_c, step)
    return dst


def float32_tie(wv, wh, dtype, most=1e-3):
    """When float32 sums of ``dtype`` data round as the float64 sweep's: ``(rel, tie)``, or None.

    :func:`stencilkit._passes.tie_bound` for 8/16-bit (and bool) data summed in float32
    (None for wider data: not every value is a float32).
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iub" or dtype.itemsize > 2:
        return None
    lo, hi = (0, 1) if dtype.kind == "b" else (int(np.iinfo(dtype).min),
                                               int(np.iinfo(dtype).max))
    return tie_bound(wv, wh, lo, hi, np.float32, most)


# Up to this many taps per axis, the separable sweep is generated with its taps unrolled: one
# pass over the row buffers per axis, sums in registers, instead of a read-modify-write pass
# per group of four taps (gaussian sigma=2 on uint8: about 2x faster).
UNROLL_MAX = 33

_SEP2_TEMPLATE = """
# Generated by stencilkit.backends.cpu_lines ({kv} x {kh} taps, {acc}); do not edit.
import numba
import numpy as np

_sk_njit = numba.njit(cache={cache}, nogil=True)
{map_source}
{exact}

@numba.njit(cache={cache}, nogil=True, parallel=True, fastmath={fastmath})
def sep2(src, dst, wv, lov, wh, loh, mode, band, clip_lo, clip_hi, rel, tie, wv64, wh64):
    n_outer, n0, n1 = src.shape
    m0 = dst.shape[1]
    m1 = dst.shape[2]
    width = n1 + {kh} - 1
    bands = -(-m0 // band)
{weights}
    su = np.uint64({step})  # a constant: unit steps vectorise
    lou = np.uint64(loh)
    lo = np.{acc}(clip_lo)
    hi = np.{acc}(clip_hi)
    for t in numba.prange(n_outer * bands):
        o = t // bands
        r0 = (t - o * bands) * band
        r1 = min(r0 + band, m0)
        ext0 = np.empty(width, wv.dtype)
        ext1 = np.empty(width, wv.dtype)
{row}
        for i0 in range(r0, r1, {pair}):
{rows}
            for c in range(n1):
                u = np.uint64(c)
{vertical}
            # then each output row of the iteration (the second may fall past the band's end):
            # its row of vertical sums extended by the mode, the horizontal pass, the store
            for i in range(i0, min(i0 + {pair}, r1)):
                ext = ext0 if i == i0 else ext1
                for p in range(loh):
                    ext[p] = ext[_sk_map(p - loh, n1, mode) + loh]
                for p in range(loh + n1, width):
                    ext[p] = ext[_sk_map(p - loh, n1, mode) + loh]
{store}
"""

# Float results.
_SEP2_FLOAT = """\
                for c in range(m1):
                    u = np.uint64(c) * su
                    dst[o, i, np.uint64(c)] = {horizontal}"""

# Integer results: round the sums, clip, store.
_SEP2_ROUND = """\
                for c in range(m1):
                    u = np.uint64(c) * su
                    dst[o, i, np.uint64(c)] = min(max(np.rint({horizontal}), lo), hi)"""

# Integer results from float32 sums (fused multiply-adds allowed) that must equal the float64
# sweep's: a sum within the float32 error bound of a half-integer (``|v - rint(v)| + rel * |v|
# >= tie``, see float32_tie) is summed again in float64 by ``_exact``. In blocks of columns: a
# vectorised pass rounds and stores every sum, keeps the block's sums and notes whether any is
# that close; only such a block is looked at again, element by element.
_SEP2_EXACT = """\
                for g0 in range(0, m1, {block}):
                    g1 = min(g0 + {block}, m1)
                    near = False
                    for c in range(g0, g1):
                        u = np.uint64(c) * su
                        v = {horizontal}
                        row[np.uint64(c - g0)] = v
                        r = np.rint(v)
                        near |= abs(v - r) + rel * abs(v) >= tie
                        dst[o, i, np.uint64(c)] = min(max(r, lo), hi)
                    if not near:
                        continue
                    for c in range(g0, g1):
                        v = row[c - g0]
                        if abs(v - np.rint(v)) + rel * abs(v) >= tie:
                            e = np.rint(_exact(src, o, i, c, wv64, lov, wh64, loh, mode))
                            dst[o, i, c] = min(max(e, clip_lo), clip_hi)"""

# The float64 recomputation of one element for _SEP2_EXACT, and the block of sums it rescans.
_SEP2_EXACT_DEFS = """
@numba.njit(cache={cache}, nogil=True)
def _exact(src, o, i, c, wv64, lov, wh64, loh, mode):
    # one element of the float64 sweep: its products summed in the same order
    n0 = src.shape[1]
    n1 = src.shape[2]
{rows64}
{weights64}
    e = 0.0
    for j in range({kh}):
        q = _sk_map(c * {step} + j - loh, n1, mode)
        e += wh64[j] * ({vertical64})
    return e
"""

# Columns per block of the exact float32 sweep: the unit of its second pass
EXACT_BLOCK = 64
_UNROLLED = {}


def _unrolled_sep2(kv, kh, acc, rounding, exact=False, step=1):
    """The generated sweep for ``kv`` x ``kh`` taps summed in ``acc`` (weights at run time).

    ``rounding``: integer results (rounded, clipped); ``exact``: those checked against the
    float64 sweep (``_SEP2_EXACT``); both and ``step`` are constants of the generated source.
    Unit steps make two output rows per iteration: their ``kv + 1`` source rows are read and
    converted once for both vertical sums (6-13% faster).
    """
    key = (kv, kh, acc, bool(rounding), exact, step)
    kernel = _UNROLLED.get(key)
    if kernel is None:
        pair = 2 if step == 1 else 1

        def source(cache):
            weights = "\n".join([f"    a{j} = wv[{j}]" for j in range(kv)]
                                 + [f"    b{j} = wh[{j}]" for j in range(kh)])
            nrows = kv + pair - 1
            rows = "\n".join(
                f"            s{j} = src[o, _sk_map(i0 * {step} + {j} - lov, n0, mode)]"
                for j in range(nrows))
            vertical = [f"                x{j} = np.{acc}(s{j}[u])" for j in range(nrows)]
            for r in range(pair):
                terms = " + ".join(f"a{j} * x{j + r}" for j in range(kv))
                vertical.append(f"                ext{r}[u + lou] = {terms}")
            horizontal = " + ".join(f"b{j} * ext[u + np.uint64({j})]" for j in range(kh))
            store = (_SEP2_EXACT if exact else _SEP2_ROUND if rounding else _SEP2_FLOAT)
            exact_defs = row = ""
            if exact:
                exact_defs = _SEP2_EXACT_DEFS.format(
                    cache=cache, kh=kh, step=step,
                    rows64="\n".join(f"    s{j} = src[o, _sk_map(i * {step} + {j} - lov, n0, mode)]"
                                      for j in range(kv)),
                    weights64="\n".join(f"    a{j} = wv64[{j}]" for j in range(kv)),
                    vertical64=" + ".join(f"a{j} * np.float64(s{j}[q])" for j in range(kv)))
                row = f"        row = np.empty({EXACT_BLOCK}, wv.dtype)"
            return _SEP2_TEMPLATE.format(
                kv=kv, kh=kh, acc=acc, cache=cache, pair=pair, step=step,
                map_source=modes.MAP_SOURCE, exact=exact_defs, weights=weights, rows=rows,
                row=row, vertical="\n".join(vertical),
                store=store.format(horizontal=horizontal, block=EXACT_BLOCK),
                fastmath="{'contract'}" if exact else "False")

        kernel = cpu.load_module(source, {}).sep2
        _UNROLLED[key] = kernel
    return kernel


# ------------------------------------------------------------ several separable terms, combined

_SUM2_TEMPLATE = """
# Generated by stencilkit.backends.cpu_lines ({terms} terms of {kv} x {kh} taps, {acc}); do
# not edit.
import numba
import numpy as np

_sk_njit = numba.njit(cache={cache}, nogil=True)
{map_source}

@numba.njit(cache={cache}, nogil=True, parallel=True)
def sepsum2(src, dst, wv, lov, wh, loh, mode, band{base_arg}):
    n_outer, n0, n1 = src.shape
    m0 = dst.shape[1]
    m1 = dst.shape[2]
    width = n1 + {kh} - 1
    bands = -(-m0 // band)
{weights}
    lou = np.uint64(loh)
    for t in numba.prange(n_outer * bands):
        o = t // bands
        r0 = (t - o * bands) * band
        r1 = min(r0 + band, m0)
{buffers}
        for i in range(r0, r1):
{rows}
            for c in range(n1):
                u = np.uint64(c)
{vertical}
{extend}
            for c in range(m1):
                u = np.uint64(c)
{horizontal}
                dst[o, i, u] = {combine}
"""

_SUMS = {}


def _unrolled_sepsum2(terms, kv, kh, acc, norm, base=False):
    """The generated sweep of ``terms`` separable terms of ``kv`` x ``kh`` taps, in ``acc``.

    Each term's sums are written as :func:`_unrolled_sep2` writes them (the same products
    added in the same order: bit for bit its float result), then the terms are combined as
    :func:`stencilkit._passes.add` combines them (left to right; ``norm``: the square root
    of the sum of squares); ``base``: an array of the output's shape is the first of them.
    """
    key = (terms, kv, kh, acc, norm, base)
    kernel = _SUMS.get(key)
    if kernel is None:
        def source(cache):
            weights = "\n".join([f"    a{t}_{j} = wv[{t}, {j}]" for t in range(terms)
                                 for j in range(kv)]
                                + [f"    b{t}_{j} = wh[{t}, {j}]" for t in range(terms)
                                   for j in range(kh)])
            buffers = "\n".join(f"        ext{t} = np.empty(width, wv.dtype)"
                                for t in range(terms))
            rows = "\n".join(f"            s{j} = src[o, _sk_map(i + {j} - lov, n0, mode)]"
                             for j in range(kv))
            vertical = [f"                x{j} = np.{acc}(s{j}[u])" for j in range(kv)]
            for t in range(terms):
                products = " + ".join(f"a{t}_{j} * x{j}" for j in range(kv))
                vertical.append(f"                ext{t}[u + lou] = {products}")
            extend = "\n".join(
                f"            for p in range(loh):\n"
                f"                ext{t}[p] = ext{t}[_sk_map(p - loh, n1, mode) + loh]\n"
                f"            for p in range(loh + n1, width):\n"
                f"                ext{t}[p] = ext{t}[_sk_map(p - loh, n1, mode) + loh]"
                for t in range(terms))
            horizontal = "\n".join(
                f"                h{t} = " + " + ".join(f"b{t}_{j} * ext{t}[u + np.uint64({j})]"
                                                   for j in range(kh))
                for t in range(terms))
            parts = [f"h{t}" for t in range(terms)]
            if base:
                parts.insert(0, "bv")
                horizontal += "\n                bv = base[o, i, u]"
            if norm:
                combine = "np.sqrt(" + " + ".join(f"{h} * {h}" for h in parts) + ")"
            else:
                combine = " + ".join(parts)
            return _SUM2_TEMPLATE.format(base_arg=", base" if base else "",
                terms=terms, kv=kv, kh=kh, acc=acc, cache=cache, map_source=modes.MAP_SOURCE,
                weights=weights, buffers=buffers, rows=rows, vertical="\n".join(vertical),
                extend=extend, horizontal=horizontal, combine=combine)

        kernel = cpu.load_module(source, {}).sepsum2
        _SUMS[key] = kernel
    return kernel


def sepsum2_pass(src, terms, lov, loh, mode, norm, out_dtype, acc=np.float64, dst=None,
                 base=None):
    """Separable ``terms`` (``((wv, wh), ...)``) over the last two axes, combined, one sweep.

    Float results in ``out_dtype`` (sums in ``acc``, which should be ``out_dtype``'s own
    type for the terms to equal their :func:`sep2_pass`); a mode that extends the array
    (not ``constant``) and at most ``UNROLL_MAX`` taps per axis. ``base`` (C-contiguous, of
    the result's shape and type): a first term, combined with the others as they combine.
    """
    out_dtype = np.dtype(out_dtype)
    n0, n1 = src.shape[-2:]
    dst = _dest(dst, src.shape, out_dtype)
    if src.size == 0:
        return dst
    s = src.reshape(-1, n0, n1)
    d = dst.reshape(-1, n0, n1)
    tasks = max(1, 4 * numba.get_num_threads() // s.shape[0])
    band = max(16, -(-n0 // tasks))
    wv = np.array([t[0] for t in terms], np.float64).astype(acc)
    wh = np.array([t[1] for t in terms], np.float64).astype(acc)
    kernel = _unrolled_sepsum2(len(terms), wv.shape[1], wh.shape[1], np.dtype(acc).name,
                               bool(norm), base is not None)
    extra = () if base is None else (base.reshape(-1, n0, n1),)
    kernel(s, d, wv, lov, wh, loh, modes.mode_code(mode), band, *extra)
    return dst


# ------------------------------------------------------------- 1-D weights along an outer axis

OUTER_LANES = 2048
"""Lanes (contiguous elements of the planes after the axis) a task sums side by side."""


@_sk_njit
def _enter(ring, slot, src, o, p, n, mode, cval, c0u, nl):
    """Row ``p`` of the line (mapped by the mode; outside: ``cval``) into ``ring[slot]``.

    Converted to the sums' type as the generated stencil reads it.
    """
    dst = ring[slot]
    m = _map(p, n, mode)
    if m >= 0:
        row = src[o, m]
        for c in range(nl):
            u = np.uint64(c)
            dst[u] = widen(row[c0u + u], cval)
    else:
        for c in range(nl):
            dst[np.uint64(c)] = cval


@numba.njit(cache=True, nogil=True, parallel=True)
def _outer(src, dst, offs, w, mode, cval, scale, scaled, lanes):
    """``dst[o, i] = w[0] * src[o, i + offs[0]] + w[1] * src[o, i + offs[1]] + ...``.

    Over ``(outer, n, inner)`` views, a tile of ``lanes`` side by side per task. The rows a
    window spans wait in a ring (each read from memory once, converted once): read straight
    from the array, a window's rows lie a plane apart, at one offset in their pages, and more
    of them than a cache set holds. The terms are added from the first in the generated
    stencil's order, four rows a pass over the tile's sums, and the sum is times ``scale``
    where ``scaled``: ``_passes.linear_source``'s value bit for bit. Rows past the ends are
    mapped by the mode (``constant``: ``cval``, in the sums' type).
    """
    n_outer, n, inner = src.shape
    tiles = -(-inner // lanes)
    k = w.size
    lo = offs.min()
    span = offs.max() - lo + 1
    for t in numba.prange(n_outer * tiles):
        o, c0, nl = _tile(t, tiles, lanes, inner)
        c0u = np.uint64(c0)
        ring = np.empty((span, nl), w.dtype)  # row p of the line in slot (p - lo) % span
        acc = np.empty(nl, w.dtype)
        for p in range(lo, lo + span - 1):
            _enter(ring, p - lo, src, o, p, n, mode, cval, c0u, nl)
        for i in range(n):
            p = i + lo + span - 1  # the row that enters the window
            _enter(ring, (p - lo) % span, src, o, p, n, mode, cval, c0u, nl)
            w0 = w[0]
            r0 = ring[(i + offs[0] - lo) % span]
            for c in range(nl):
                u = np.uint64(c)
                acc[u] = w0 * r0[u]
            j = 1
            while j + 4 <= k:  # four rows, added one after another
                w1, w2, w3, w4 = w[j], w[j + 1], w[j + 2], w[j + 3]
                r1 = ring[(i + offs[j] - lo) % span]
                r2 = ring[(i + offs[j + 1] - lo) % span]
                r3 = ring[(i + offs[j + 2] - lo) % span]
                r4 = ring[(i + offs[j + 3] - lo) % span]
                for c in range(nl):
                    u = np.uint64(c)
                    acc[u] = (((acc[u] + w1 * r1[u]) + w2 * r2[u]) + w3 * r3[u]) + w4 * r4[u]
                j += 4
            while j < k:
                w1 = w[j]
                r1 = ring[(i + offs[j] - lo) % span]
                for c in range(nl):
                    u = np.uint64(c)
                    acc[u] = acc[u] + w1 * r1[u]
                j += 1
            out = dst[o, i]
            if scaled:
                for c in range(nl):
                    u = np.uint64(c)
                    out[c0u + u] = acc[u] * scale
            else:
                for c in range(nl):
                    u = np.uint64(c)
                    out[c0u + u] = acc[u]


def outer_pass(src, axis, offsets, weights, mode, cval, divisor=None, dst=None):
    """Weights along ``axis`` of a C-contiguous array, summed in the weights' float type.

    ``offsets[j]``, ``weights[j]``: the taps, in the order the generated stencil of the same
    taps (``_passes.linear_source``, every weight non-zero, in the sums' type) adds them; the
    result, in that type, is that stencil's bit for bit (with ``divisor``: times its
    reciprocal, as that stencil's float mean). For axes before the last two
    (``_passes.Line1``): there the stencil reads each input row ``len(weights)`` times, a
    whole plane apart, where this reads it once per tile of lanes.
    """
    w = np.asarray(weights)
    dst = _dest(dst, src.shape, w.dtype)
    if src.size == 0:
        return dst
    outer = math.prod(src.shape[:axis])
    n = src.shape[axis]
    inner = math.prod(src.shape[axis + 1:])
    tasks = max(1, 2 * numba.get_num_threads() // max(outer, 1))
    lanes = max(min(OUTER_LANES, -(-inner // tasks)), 64)
    s = src.reshape(outer, n, inner)
    d = dst.reshape(outer, n, inner)
    scale = w.dtype.type(1 if divisor is None else 1 / divisor)
    _outer(s, d, np.asarray(offsets, np.int64), w, modes.mode_code(mode), w.dtype.type(cval),
           scale, divisor is not None, lanes)
    return dst
