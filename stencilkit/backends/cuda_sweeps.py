"""What the one-sweep filter kernels share (box, separable, extremes, small medians).

:mod:`.cuda_box`, :mod:`.cuda_sep`, :mod:`.cuda_minmax` and :mod:`.cuda_median`: each runs
over the last two axes of a C-contiguous ``(B, n0, n1)`` device array as two bodies of
generated C++: the interior (``<prefix>_interior_body``), whose threads walk strips of rows
with no column boundary logic (rows through the mode's index map, for every mode but
``constant``: :func:`rows_mapped`), and the border (``<prefix>_border_body``), whose threads
each walk a short strip down one column through the mode's index map: strips of up to
:data:`BORDER_ROWS` rows (:func:`border_rows`) down the columns the interior leaves at either
end, and, for ``constant`` (rows outside are cval), one strip per column for the top rows and
one for the bottom rows (the window's reach along axis -2). Their entry kernels
(:func:`entries`): ``<prefix>_fused``, both in one launch (:data:`FUSED`), or
``<prefix>_interior`` and then ``<prefix>_border``. This module plans their launches, emits
the border's enumeration of strips and the entry kernels, and launches a module on device
arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _dtypes, codegen_cpp, modes
from . import cuda_replay

BORDER_ROWS = 16
"""Rows per thread's strip in the border kernel's side bands, at most (:func:`border_rows`)."""

FUSED = True
"""Whether a module runs its border in its interior's launch: ``<prefix>_fused``, whose first
rows of blocks (the lowest ``blockIdx.y``, which the GPU dispatches first; a strip a thread)
walk the border's strips while the other blocks run the interior, instead of
``<prefix>_interior`` and then ``<prefix>_border`` (which still runs alone where no interior
thread has work). A border kernel of its own ran after its interior's: on an H200
(``tools/gpu_profile.py``, 8192 x 8192) 7 to 20% of a sweep call's time (the 15 x 15 uint8
box's 0.039 of 0.191 ms), few threads walking dependent reads while the GPU idles. Fused, same
card, same run, the kernels' own times (CUDA events per launch) against interior plus border:
as fast or faster in every family (maximum 15 x 15 uint8 0.178 against 0.188 + 0.041 ms,
median 3 x 3 uint8 0.102 against 0.099 + 0.023, sigma 2 float32 Gaussian 0.404-0.416
against 0.379 + 0.046, uniform 15 x 15 uint8 0.132 against 0.105 + 0.034); whole calls
mostly faster too (maximum 3 / 15 uint8 0.125 / 0.213 against 0.164 / 0.283 ms), two the
other way within this card's noise between rows (that Gaussian 0.525 against 0.477, that
box 0.191 against 0.176). Part of the modules' cache keys; tools/gpu_profile.py times both."""


def rows_mapped(mode) -> bool:
    """Whether the interior kernel maps its rows through ``mode`` and so covers every row.

    Every mode but ``constant`` (whose rows outside are cval, not rows of the array): the
    border kernel then computes only the columns at either end (its top and bottom strips,
    a thread per column walking the window's whole reach, were the slow part of it).
    """
    return mode != "constant"


@dataclass(frozen=True)
class UnitsModule:
    """An emitted sweep module whose threads own whole units, and what launching it needs.

    (The small medians, :mod:`.cuda_median`, and the 8/16-bit extremes, :mod:`.cuda_minmax`.)
    """

    source: str
    prefix: str   # its kernels: <prefix>_interior and <prefix>_border
    dtype: np.dtype
    lo0: int      # window rows before / after each output
    hi0: int
    per: int      # elements per unit read (4: 8-bit words, 2: 16-bit words, 1: elements)
    ul: int       # the first unit a thread reads, relative to its own first unit
    ur: int       # the last
    units: int    # units (words or elements) of outputs per thread
    idx64: bool
    rowmap: bool  # the interior maps rows through the mode: it covers every row
    block: tuple = (64, 4, 1)  # threads per block of the interior kernel

    fused: bool = False  # the border in the interior's launch (:data:`FUSED`)
    line: int = 1  # units per line of the interior kernel, as emitted (:func:`unit_line`)

    @property
    def kernels(self) -> tuple:
        """The kernel names the module defines."""
        return kernel_names(self.prefix, self.fused)

    def launches(self, shape, rows=None):
        """``[(kernel, grid, block, (rows, k0, k1))]`` for a ``(B, n0, n1)`` array.

        As :meth:`.cuda_box.BoxModule.launches`.
        """
        k0, threads, lead = interior_units(shape[2], self.per, self.ul, self.ur, self.units,
                                           self.line)
        lo0, hi0 = (0, 0) if self.rowmap else (self.lo0, self.hi0)
        return plan(self.prefix, shape, lo0, hi0, threads,
                    self.per * self.units * threads, (k0, k0 + self.units * threads),
                    self.block, rows, self.fused, self.lo0 + self.hi0, lead)


def unit_line(per, dtypes, units) -> int:
    """Units per line (:func:`.codegen_cpp.line_of`) of a sweep's interior kernel.

    Its units are ``per`` elements; counted in the narrowest of ``dtypes`` (the arrays), so
    that every array's row starts a line there.
    """
    return codegen_cpp.line_of(per * min(np.dtype(d).itemsize for d in dtypes), units)


def interior_units(n1, per, ul, ur, units, line):
    """``(k0, threads, lead)``: the interior kernel's units of a row of ``n1`` elements.

    Its working threads own ``units`` units each from ``k0`` (the first unit whose reads,
    ``ul`` to ``ur`` units from a thread's first, stay in the row; rounded up to whole
    threads, so that they can start a line), ``threads`` of them; ``lead`` idle threads come
    first, from the line's start (:func:`.codegen_cpp.lead_threads`, :func:`interior_head`).
    """
    nu = n1 // per
    k0 = codegen_cpp._cdiv(-ul, units) * units
    threads = max(0, (nu - 1 - ur - k0) // units + 1)
    return k0, threads, codegen_cpp.lead_threads(k0, line, units)


def kernel_names(prefix, fused) -> tuple:
    """The entry kernels of a sweep module: the interior's (alone or fused) and the border's."""
    return (f"{prefix}_fused" if fused else f"{prefix}_interior", f"{prefix}_border")


def interior_open(prefix, params, ix) -> str:
    """The line opening a module's interior, a device function.

    Of the kernels' parameters and ``sk_by``, the block's row among the interior's
    (``blockIdx.y`` in a launch of its own).
    """
    return (f"static __device__ __forceinline__ void {prefix}_interior_body({params}, {ix} sk_by)"
            " {")


def border_open(prefix, params, ix) -> str:
    """The line opening a module's border, a device function.

    Of the kernels' parameters and of ``sk_t0`` (the thread's first strip), ``sk_stride``
    (the threads walking strips) and ``brows`` (rows per strip of the side bands), for
    :func:`border_strips`.
    """
    return (f"static __device__ __forceinline__ void {prefix}_border_body({params}, {ix} sk_t0, "
            f"{ix} sk_stride, {ix} brows) {{")


def entries(prefix, params, names, ix, fused, reach) -> list:
    """C++ lines of a module's entry kernels (:func:`kernel_names`) round its two bodies.

    ``<prefix>_border``: a thread per strip, grid-stride, ``rows`` rows per side strip.
    ``<prefix>_fused`` (``fused``, :func:`stencilkit.codegen_cpp.fused_kernel`): the interior
    over ``n0 - reach`` rows (``reach``: the rows the border computes above and below), and in
    the rows of blocks before it (:func:`plan` sizes them) the border's strips, as short as
    those blocks' threads allow (:func:`border_strips`, ``brows`` 0); else
    ``<prefix>_interior``.
    """
    lines = []
    if fused:
        lines += ["// the interior's blocks after rows of blocks walking the border's strips",
                  *codegen_cpp.fused_kernel(f"{prefix}_fused", params, names, ix,
                                            f"{prefix}_interior_body", f"{prefix}_border_body",
                                            f"(n0 - {reach})", ", 0")]
    else:
        lines += [f'extern "C" __global__ void {prefix}_interior({params}) {{',
                  f"  {prefix}_interior_body({names}, ({ix})blockIdx.y);", "}"]
    return lines + [
        f'extern "C" __global__ void {prefix}_border({params}) {{',
        f"  {prefix}_border_body({names}, ({ix})blockIdx.x * ({ix})blockDim.x + "
        f"({ix})threadIdx.x, ({ix})gridDim.x * ({ix})blockDim.x, rows);",
        "}", ""]


def border_rows(B, inner, band) -> int:
    """Rows per strip of the border kernel's side bands: ``band`` columns of ``inner`` rows.

    :data:`BORDER_ROWS`, or fewer where the bands would not give the GPU
    ``codegen_cpp.TARGET_THREADS`` threads: down to one row a thread. A thread's strip is a
    chain of dependent reads (a sliding window's rows, or each output's window in turn), so
    its length, not the bands' few elements, sets the kernel's time: on an H200 (tools/
    gpu_profile.py, 8192 x 8192) the 15 x 15 uint8 maximum's border kernel took 0.133 ms with
    16-row strips, 8192 threads on 132 multiprocessors, as long as its interior kernel.
    """
    return max(1, min(BORDER_ROWS, B * band * inner // codegen_cpp.TARGET_THREADS))


def border_threads(B, n0, n1, lo0, hi0, band, rows=BORDER_ROWS) -> int:
    """Threads the border kernel needs: ``band`` columns are left by the interior kernel.

    ``rows``: rows per strip of the side bands.
    """
    top = min(lo0, n0)
    inner = max(0, n0 - lo0 - hi0)
    bottom = n0 - top - inner
    return B * (n1 * (top > 0) + n1 * (bottom > 0) + band * codegen_cpp._cdiv(inner, rows))


FUSED_BORDER_ROWS = 4
"""Rows per strip of a fused kernel's border bands, by the border's rows of blocks (:func:`plan`;
the kernel takes the shortest strips its threads cover, :func:`border_strips`).

A strip is a chain of dependent reads, and the fused kernels' borders run long ones on few
threads (8192 for an 8192^2 image), beside the interior's blocks. On an H100 (2026-11-27,
``tools/gpu_profile.py``, single launches) the fused kernels took longer than their interiors
alone by about the border kernel's time on its own: the sigma 2 float32 Gaussian 0.364 ms
against 0.317 + 0.046, the 15 x 15 uint8 maximum 0.196 against 0.149 + 0.036, the 15 x 15
uint8 box 0.132 against 0.118 + 0.035 (that one's border also takes 56 registers, the
interior 47). Shorter strips give the border more threads, but each output's window is
then reduced afresh (more work): the profile's "border strips of" rows time 4 and 1 against
the default. Two H100 runs (2026-11-27, each kernel's least of 5 launches, ms; 4 rows against
16, then 1 row): the Gaussian 0.332 / 0.356 against 0.329, then 0.328 / 0.350 against 0.329;
the 15 x 15 uint8 box 0.117 against 0.123, then 0.115 against 0.125; the 15 x 15 uint8
maximum 0.153 against 0.170, then 0.150 / 0.152 against 0.157. So 4 (16 before)."""

REACH_STRIPS = 4
"""An interior strip is at least this many times the rows its window reaches (and at least
``codegen_cpp.ROWS``), where the GPU still gets enough threads (:func:`plan`).

A thread first reduces the ``kv - 1`` rows above its strip's first output (the ring's or the
running sums' start): at 32-row strips the sigma 2 Gaussian (17 rows) reduced 48 rows for 32
outputs, half again its horizontal work and row loads; the 15 x 15 box read 23% more rows.
At 4 times the reach (64 rows there) that share halves; longer strips mean fewer blocks, and
at 8192^2 the Gaussian still fills an H200 5 times over. 0: :data:`codegen_cpp.ROWS` alone
(``tools/gpu_profile.py``'s "strips of 32 rows" rows; not timed yet)."""


def plan(prefix, shape, lo0, hi0, threads, covered, span, block, rows=None, fused=False,
         reach=0, lead=0):
    """The launches ``[(kernel, grid, block, (rows, *span))]`` of one application.

    ``threads``: interior threads per row, covering ``covered`` columns, which the kernels
    take as the two integers ``span``; ``block``: the interior kernel's block; ``rows``:
    force the strip length of both kernels (the host tests), else ``codegen_cpp.ROWS`` (or
    :data:`REACH_STRIPS` times ``reach``, the rows a window spans less one, if more) or fewer
    so that the GPU still gets enough threads (the border kernel's: :func:`border_rows`).
    ``fused``: one launch of ``<prefix>_fused`` where the interior has threads
    (:func:`entries`), its grid taller by the rows of blocks that give the border's strips of
    :data:`FUSED_BORDER_ROWS` rows a thread each (at least one row, at most what the grid's
    limit leaves; the kernel sizes its strips to the threads it finds). ``lead``: idle threads
    before the first working one in each row of the grid (:func:`interior_units`).
    """
    B, n0, n1 = shape
    if B * n0 * n1 == 0:
        return []
    cdiv = codegen_cpp._cdiv
    inner = max(0, n0 - lo0 - hi0)
    out = []
    strip = 1
    if threads and inner:
        most = max(codegen_cpp.ROWS, REACH_STRIPS * reach)
        strip = rows or max(1, min(most, cdiv(threads * B * inner, codegen_cpp.TARGET_THREADS)))
        while cdiv(cdiv(inner, strip), block[1]) + fused > codegen_cpp.MAX_GRID_YZ:
            strip *= 2
        grid = (cdiv(lead + threads, block[0]), cdiv(cdiv(inner, strip), block[1]),
                min(B, codegen_cpp.MAX_GRID_YZ))
        if fused:  # the border's rows of blocks: a thread for each of its strips
            band = n1 - covered
            ey = codegen_cpp.fused_rows(
                border_threads(B, n0, n1, lo0, hi0, band, rows or FUSED_BORDER_ROWS),
                grid, block)
            return [(f"{prefix}_fused", (grid[0], grid[1] + ey, grid[2]), block,
                     (strip, *span))]
        out.append((f"{prefix}_interior", grid, block, (strip, *span)))
    else:
        span, covered = (0, 0), 0
    brows = rows or border_rows(B, inner, n1 - covered)
    total = border_threads(B, n0, n1, lo0, hi0, n1 - covered, brows)
    if total:
        bblock = codegen_cpp.BLOCK_1D
        grid = (max(1, min(cdiv(total, bblock[0]), 1 << 20)), 1, 1)
        out.append((f"{prefix}_border", grid, bblock, (brows, *span)))
    return out


def row_reads(lo0, hi0, rowmap):
    """``((top, bottom), rmap)`` of a sweep whose window reaches ``lo0``/``hi0`` rows.

    ``top``/``bottom``: the rows above and below the interior that the border kernel computes
    (none where the interior maps its rows through the mode, ``rowmap``); ``rmap(row)``: the
    C++ row index the interior reads for the expression ``row``.
    """
    def rmap(row):
        return f"sk_map({row}, n0, mode)" if rowmap else f"({row})"

    return ((0, 0) if rowmap else (lo0, hi0)), rmap


def ahead_row(row, rowmap, rmap) -> str:
    """The C++ index of the row ``row`` read a step before its use (:data:`.cuda_sep.AHEAD`).

    ``rmap(row)`` where the interior maps its rows (:func:`row_reads`); else ``row`` clamped
    to the array's last: the row after a strip's last is read ahead and never used.
    """
    return rmap(row) if rowmap else f"(({row}) < n0 ? ({row}) : n0 - 1)"


def interior_head(prefix, params, ix, units, top, bottom, per, unit, out_c, line) -> list:
    """C++ lines opening the interior (:func:`interior_open`) of a sweep of whole units.

    Inside, each thread has ``k`` (its first unit of ``units``; launches cover ``k0`` to
    ``k1``), its strip of rows ``lo`` to ``hi`` (``rows`` long, within ``top`` to
    ``n0 - bottom``), ``nu`` units a row of ``per`` elements, the plane ``b`` and ``plane``
    (the plane's rows seen as units of type ``unit``, from the thread's first), and ``op``
    (its first output, of C++ type ``out_c``). The threads count from ``k0``'s line
    (``line`` units, :func:`unit_line`); those before ``k0`` return. The caller closes the
    loop over planes and the kernel.
    """
    start = codegen_cpp.line_start_cpp("k0", line, units)
    return [
        interior_open(prefix, params, ix),
        f"  const {ix} k = {start} + (({ix})blockIdx.x * ({ix})blockDim.x + ({ix})threadIdx.x)"
        f" * {units};",
        f"  if ({'k < k0 || ' if start != 'k0' else ''}k >= k1) return;",
        f"  const {ix} lo = {top} + (sk_by * ({ix})blockDim.y + ({ix})threadIdx.y) * rows;",
        f"  const {ix} hiw = n0 - {bottom};",
        "  if (lo >= hiw) return;",
        f"  const {ix} hi = lo + rows < hiw ? lo + rows : hiw;",
        f"  const {ix} nu = n1 / {per};",
        f"  for ({ix} b = blockIdx.z; b < B; b += gridDim.z) {{",
        f"    const {unit}* __restrict__ plane = (const {unit}*)(src + b * n0 * n1) + k;",
        f"    {out_c}* __restrict__ op = dst + b * n0 * n1 + lo * n1 + k * {per};"]


def border_strips(ix, lo0, hi0, c0, c1) -> list:
    """C++ lines opening the border's loop over its strips (after :func:`border_open`).

    Inside the loop each thread has ``b`` (the plane), ``j`` (its column) and the rows
    ``r0`` to ``r1``; ``c0``/``c1``: C++ expressions of the interior kernel's first and
    past-the-last columns; ``brows``: the side bands' strip length (:func:`border_rows`), or
    0 (the fused kernels) for the shortest strips that the ``sk_stride`` threads cover in one
    pass, at most :data:`BORDER_ROWS` rows. A strip is a chain of dependent reads: on few
    threads, long strips were the kernel's tail (:func:`border_rows`; on an H100 the fused
    15 x 15 uint8 maximum took 0.196 ms, its interior alone 0.149, with 16-row border strips
    on 8192 threads). The caller closes the loop.
    """
    return [
        f"  const {ix} top = n0 < {lo0} ? n0 : {lo0};",
        f"  const {ix} inner = n0 > {lo0 + hi0} ? n0 - {lo0 + hi0} : 0;",
        f"  const {ix} bottom = n0 - top - inner;",
        f"  const {ix} cA = {c0}, cB = {c1};",
        f"  const {ix} band = cA + (n1 - cB);",
        f"  const {ix} nA = top > 0 ? n1 : 0, nC = bottom > 0 ? n1 : 0;",
        "  if (brows <= 0) {  // strips as short as the threads allow",
        f"    const {ix} side = sk_stride / B - nA - nC;  // a plane's threads for its bands",
        f"    const {ix} cols = band > 0 && side >= band ? side / band : 1;",
        "    brows = (inner + cols - 1) / cols;",
        f"    brows = brows < 1 ? 1 : brows > {BORDER_ROWS} ? {BORDER_ROWS} : brows;",
        "  }",
        f"  const {ix} per_b = nA + nC + band * ((inner + brows - 1) / brows);",
        f"  for ({ix} t = sk_t0; t < B * per_b; t += sk_stride) {{",
        f"    const {ix} b = t / per_b;",
        f"    {ix} u = t - b * per_b, j, r0, r1;",
        "    if (u < nA) { j = u; r0 = 0; r1 = top; }",
        "    else if (u - nA < nC) { j = u - nA; r0 = top + inner; r1 = n0; }",
        "    else {",
        "      u -= nA + nC; j = u % band; if (j >= cA) j += cB - cA;",
        "      r0 = top + (u / band) * brows;",
        "      r1 = r0 + brows < top + inner ? r0 + brows : top + inner;",
        "    }"]


def run(x, out_dtype, module_of, scalars_of, out=None, key=None):
    """Launch a one-sweep module over the last two axes of the device array ``x``.

    ``module_of(dtype, addresses, idx64)``: the module for the input's work array
    (``addresses``: of the input's and the output's first elements, for alignment);
    ``scalars_of(mod, shape, rows, a, b)``: a launch's scalars after the two arrays; a module
    with a ``scratch(shape)`` method giving ``(elements, dtype)`` takes a new device buffer of
    them after those (one a call: calls from several threads stay apart). Writes
    ``out`` (a device array of ``x``'s shape and ``out_dtype``), directly where it is
    C-contiguous and apart from ``x``; returns it, or without ``out`` a new device array of
    ``x``'s kind (CuPy or numba). ``key``: what the scalars depend on besides the module and
    the shape (the mode, the cval's :func:`stencilkit._dtypes.exact_key`): the launches are
    then worked out once per configuration (:data:`.cuda_cpp._LAUNCHES`).
    """
    from . import cuda as cuda_backend
    from . import cuda_cpp

    token = cuda_replay.enter()
    shape = tuple(x.shape)
    n0, n1 = shape[-2], shape[-1]
    wshape = (math.prod(shape[:-2]), n0, n1)
    dtype = np.dtype(x.dtype)
    src = cuda_backend.work(x, (), False, wshape, dtype, x)
    direct = (out is not None and np.dtype(out.dtype) == np.dtype(out_dtype)
              and cuda_backend._contiguous(out) and not cuda_backend.may_share_memory(out, x))
    dst = out.reshape(wshape) if direct else cuda_backend.empty(wshape, out_dtype, x)
    if not math.prod(wshape):
        return out if direct else cuda_backend.deliver(dst.reshape(shape), out)
    s, d = cuda_cpp.as_cupy(src), cuda_cpp.as_cupy(dst)
    idx64 = math.prod(wshape) >= 2**31
    mod = module_of(dtype, (s.data.ptr, d.data.ptr), idx64)
    found = cuda_cpp.kernels(mod, False)
    pack = cuda_cpp.packer(found)
    ck, calls = None if key is None else (mod.source, wshape, key, REACH_STRIPS,
                                          FUSED_BORDER_ROWS,
                                          codegen_cpp.launch_settings(), pack), None
    try:
        calls = None if ck is None else cuda_cpp._LAUNCHES.get(ck)
    except TypeError:  # (an unhashable mode, one per axis: no cache)
        ck = None
    if calls is None:
        calls = [(kname, grid, block, cuda_cpp.packed(pack, scalars_of(mod, wshape, rows, a, b)))
                 for kname, grid, block, (rows, a, b) in mod.launches(wshape)]
        if ck is not None:
            _dtypes.remember(cuda_cpp._LAUNCHES, ck, calls)
    calls = [(found[kname], grid, block, scalars) for kname, grid, block, scalars in calls]
    scratch = getattr(mod, "scratch", lambda shape: None)(wshape)

    def launch(s, d, like):  # (like: not x, which a replay would keep alive)
        extra = () if scratch is None else (
            cuda_cpp.as_cupy(cuda_backend.empty((scratch[0],), scratch[1], like)),)
        for kernel, grid, block, scalars in calls:
            kernel(grid, block, (s, d, *scalars, *extra))

    launch(s, d, x)
    res = out if direct else cuda_backend.deliver(dst.reshape(shape), out)

    # a C-contiguous CuPy input, as the kernels take it: a replay launches on it directly (a
    # kernel takes an array's address) into a new output of the call's shape, or into out=
    # where the first call wrote out= itself (a CuPy array) and this one does not overlap it
    plain = cuda_backend.as_is(x)
    plain_out = plain and direct and cuda_backend.is_cupy(out)

    def same_module(s, d):  # (the module that these addresses take: the same one, or a
        try:                # replay declines and the call runs in full)
            return module_of(dtype, (s.data.ptr, d.data.ptr), idx64) is mod
        except Exception:  # noqa: BLE001 (e.g. run_words' unaligned rows)
            return False

    def replay(x, out):  # (the same configuration: shape, strides, dtypes; see cuda_replay)
        d = None
        if plain and out is None:
            d = cuda_backend.empty(shape, out_dtype, x)
        elif plain_out and out is not None and not cuda_backend.may_share_memory(out, x):
            d = out
        if d is not None:
            if not same_module(x, d):
                return None
            launch(x, d, x)
            return d
        src = cuda_backend.work(x, (), False, wshape, dtype, x)
        direct = (out is not None and np.dtype(out.dtype) == np.dtype(out_dtype)
                  and cuda_backend._contiguous(out)
                  and not cuda_backend.may_share_memory(out, x))
        dst = out.reshape(wshape) if direct else cuda_backend.empty(wshape, out_dtype, x)
        s, d = cuda_cpp.as_cupy(src), cuda_cpp.as_cupy(dst)
        if not same_module(s, d):
            return None
        launch(s, d, x)
        return out if direct else cuda_backend.deliver(dst.reshape(shape), out)

    cuda_replay.offer(token, x, out, res, replay)
    return res


class Pairs:
    """Values of 8/16-bit rows two to a 32-bit register, in its 16-bit halves.

    The rows are read as words from the thread's unit ``ul`` to ``ur``. An 8-bit word's lanes
    make two pairs, columns two apart (4u, 4u + 2 in register ``2i`` and 4u + 1, 4u + 3 in
    ``2i + 1``, ``i = u - ul``); a 16-bit word is one pair of neighbouring columns (register
    ``i``). Signed lanes are biased (the sign bit flipped), so that 16x2 unsigned minima and
    maxima (``sk_vmin2``/``sk_vmax2``) order them; the stores flip it back. Outputs pair up the
    same way: ``(o, o + 2)`` for 8-bit data, ``(o, o + 1)`` for 16-bit.
    """

    def __init__(self, dtype, lo, hi, words8):
        """A window reaching ``lo`` columns left and ``hi`` right of each output.

        Each thread owns ``words8`` words of 8-bit outputs, or twice as many of 16-bit ones
        (as many output pairs): ``units`` words, read from ``ul`` to ``ur`` (relative to its
        first).
        """
        self.dtype = dtype = np.dtype(dtype)
        self.per = 4 // dtype.itemsize
        self.units = words8 if self.per == 4 else 2 * words8
        self.ul = (-lo) // self.per
        self.ur = (self.per * self.units - 1 + hi) // self.per
        sign = " ^ 0x80808080u" if self.per == 4 else " ^ 0x80008000u"
        self.flip = sign if dtype.kind == "i" else ""

    @property
    def registers(self) -> int:
        """Registers a row's pairs take: ``{prefix}0`` to ``{prefix}{registers - 1}``."""
        return (self.ur - self.ul + 1) * (2 if self.per == 4 else 1)

    def load(self, prefix, ptr, pad, declare=True):
        """Lines declaring the row ``ptr``'s pairs as ``{prefix}{register}``.

        ``declare=False``: assigned to registers declared before (rings of rows).
        """
        lines = []
        for u in range(self.ul, self.ur + 1):
            i = u - self.ul
            if self.per == 2:
                lines.append(f"{pad}{'const sk_u32 ' if declare else ''}{prefix}{i} = "
                             f"{ptr}[{u}]{self.flip};")
            elif declare:
                lines.append(f"{pad}const sk_u32 {prefix}w{i} = {ptr}[{u}]{self.flip}, "
                             f"{prefix}{2 * i} = {prefix}w{i} & 0x00ff00ffu, {prefix}{2 * i + 1}"
                             f" = sk_byte_perm({prefix}w{i}, 0u, 0x4341u);")
            else:
                lines.append(f"{pad}{{ const sk_u32 w = {ptr}[{u}]{self.flip}; {prefix}{2 * i} = "
                             f"w & 0x00ff00ffu; {prefix}{2 * i + 1} = sk_byte_perm(w, 0u, "
                             "0x4341u); }")
        return lines

    def pair(self, prefix, col):
        """The pair of columns from ``col`` (relative to the thread's first output).

        A register, or for a pair straddling two of them a byte permutation.
        """
        if self.per == 2:
            u, q = divmod(col, 2)
            i, j = u - self.ul, u - self.ul + 1
        else:
            u, q = divmod(col, 4)
            i = 2 * (u - self.ul) + (q & 1)
            j, q = i + 2, q // 2
        return f"{prefix}{i}" if q == 0 else f"sk_byte_perm({prefix}{i}, {prefix}{j}, 0x5432u)"

    def outputs(self):
        """The first output of each output pair of a thread's words."""
        if self.per == 2:
            return [2 * w for w in range(self.units)]
        return [o for w in range(self.units) for o in (4 * w, 4 * w + 1)]

    @property
    def line(self) -> int:
        """Words per line of the interior kernel whose threads own these pairs' words."""
        return unit_line(self.per, (self.dtype,), self.units)

    def store(self, name, pad):
        """Lines storing the output pairs ``name(o)`` (o from :meth:`outputs`) at ``op``."""
        if self.per == 2:
            return [f"{pad}((sk_u32*)op)[{w}] = {name(2 * w)}{self.flip};"
                    for w in range(self.units)]
        return [f"{pad}((sk_u32*)op)[{w}] = sk_byte_perm({name(4 * w)}, {name(4 * w + 1)}, "
                f"0x6240u){self.flip};" for w in range(self.units)]

    def module(self, lines, prefix, lo0, hi0, idx64, rowmap, params, names,
               fused=None) -> UnitsModule:
        """The :class:`UnitsModule` whose threads own these pairs' words.

        ``lines``: its C++ (the bodies ``{prefix}_interior_body`` and ``{prefix}_border_body``
        taking ``params``, named ``names``), to which the entry kernels (:func:`entries`;
        ``fused``: default :data:`FUSED`) and the host launchers are added.
        """
        return units_module(lines, prefix, self.dtype, lo0, hi0, self.per, self.ul, self.ur,
                            self.units, idx64, rowmap, params, names, fused, self.line)


def units_module(lines, prefix, dtype, lo0, hi0, per, ul, ur, units, idx64, rowmap, params,
                 names, fused, line) -> UnitsModule:
    """A :class:`UnitsModule` of the bodies in ``lines`` (see :meth:`Pairs.module`).

    ``line``: the units per line its interior was emitted with (:func:`interior_head`).
    """
    fused = FUSED if fused is None else fused
    ix = "sk_i64" if idx64 else "sk_i32"
    kernels = kernel_names(prefix, fused)
    (top, bottom), _ = row_reads(lo0, hi0, rowmap)
    source = "\n".join([*lines, *entries(prefix, params, names, ix, fused, top + bottom),
                        codegen_cpp.host_launchers(kernels, params, names)]) + "\n"
    return UnitsModule(source, prefix, np.dtype(dtype), lo0, hi0, per, ul, ur, units, idx64,
                       rowmap, fused=fused, line=line)


def words_params(tc, ix):
    """``(params, names)`` of the kernels :func:`run_words` launches.

    ``tc``: the data's C++ type; ``ix``: the index type.
    """
    return (f"const {tc}* __restrict__ src, {tc}* __restrict__ dst, {ix} B, {ix} n0, "
            f"{ix} n1, {ix} rows, {ix} k0, {ix} k1, int mode, sk_i32 cval",
            "src, dst, B, n0, n1, rows, k0, k1, mode, cval")


def words_prelude(ix) -> list:
    """The C++ every module of 8/16-bit pairs starts with.

    The prelude (with the byte permutation), the mode's index map, 16x2 SIMD minima and maxima,
    and int minima and maxima.
    """
    return [codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;", codegen_cpp._map_source(ix),
            codegen_cpp.VMINMAX2,
            "SK_FN sk_i32 sk_mn(sk_i32 a, sk_i32 b) { return b < a ? b : a; }",
            "SK_FN sk_i32 sk_mx(sk_i32 a, sk_i32 b) { return b > a ? b : a; }", ""]


class _Unaligned(Exception):
    """Rows that do not start on 4-byte boundaries (for :func:`run_words`)."""


def run_words(x, key, emit, mode, cval, out=None, modules=None):
    """:func:`run` for modules whose interior reads rows as 32-bit words only.

    ``emit(dtype, idx64, rowmap)``: the module, remembered in ``modules`` under ``key`` and
    those; the scalars after the two arrays: the launch's, the mode's code and ``cval`` (an
    int32, used by ``constant`` only). Returns None (nothing launched) where the rows are not
    whole words on 4-byte boundaries: the caller's other route runs the call then.
    """
    from .cuda_box import words_ok

    n1 = tuple(x.shape)[-1]
    if (n1 * np.dtype(x.dtype).itemsize) % 4:  # (alignment: checked once the arrays are known)
        return None
    rowmap = rows_mapped(mode)
    modules = {} if modules is None else modules

    def module_of(dt, at, idx64):
        if not words_ok(dt, n1, *at):
            raise _Unaligned
        k = (key, dt.str, idx64, rowmap, FUSED, codegen_cpp.LINE_BYTES)
        if k not in modules:
            modules[k] = emit(dt, idx64, rowmap)
        return modules[k]

    def scalars_of(mod, shape, rows, k0, k1):
        ix = np.int64 if mod.idx64 else np.int32
        fill = np.int32(int(cval)) if mode == "constant" else np.int32(0)
        return (*(ix(v) for v in (*shape, rows, k0, k1)), np.int32(modes.mode_code(mode)),
                fill)

    try:
        return run(x, np.dtype(x.dtype), module_of, scalars_of, out,
                   (mode, _dtypes.exact_key(cval)))
    except _Unaligned:
        return None
