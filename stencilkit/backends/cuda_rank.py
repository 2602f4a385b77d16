"""Medians (any rank) of windows too large for a sorting network, as generated CUDA C++.

The filters' ``Rank`` pass (a median, rank or percentile filter of more than
``_passes.MEDIAN_MAX`` elements),
which the generated stencils cannot express. Two kernels, chosen by :func:`run`:

``sk_huang`` (8/16-bit and bool data, a box over the last two axes)
    Huang's sliding histogram (T. Huang, G. Yang, G. Tang, IEEE TASSP 27, 1979; the CPU's
    ``cpu_lines.rank._huang`` slides along rows, this one down columns): each thread walks a
    strip of :data:`STRIP` rows down one column with a 256-bin histogram of its window in
    shared memory (8-bit counts for windows of up to 255 elements, else 16-bit; its own bins,
    interleaved with its block's so that a warp's updates fall in different banks), and the
    count below the current value: per output ``2 * kh`` reads and
    histogram updates, and a few steps of the value, instead of a selection over ``kv * kh``.
    16-bit data in two levels of 256 bins (the CPU's ``_huang16`` keeps all 65536): the high
    bytes, slid the same way, and the low bytes of the window's elements in the median's
    high byte, slid while the median stays in it and gathered again (``kv * kh`` reads) when
    it moves to another.
``sk_select`` (every other dtype and footprint, up to :data:`SELECT_BYTES` of window)
    a thread per output element gathers the window through the mode's index map into a
    buffer of its own, in the footprint's C order, and runs the CPU's own quickselect
    (``cpu_lines.rank._select``: a NaN in the window wins; the same Hoare partitions, so the
    same element, signed zeros included). The buffers are in shared memory where a block's
    fit :data:`SELECT_SHARED` (element ``e`` of thread ``t`` at ``e * T + t``: a warp's
    accesses fall in 32 banks whatever the indices), else in local memory.
``sk_select_scratch`` (larger windows)
    boxes up to :data:`BOX_MAX` elements, other footprints up to :data:`OFFSETS_MAX` offsets:
    the same selection over windows in a device scratch array of at most
    :data:`SCRATCH_BYTES` (a grid of as many threads as it holds windows for, each striding
    over the outputs; interleaved by thread, so a warp's accesses coalesce), instead of local
    memory reserved for every thread the GPU can hold.

Outside the array the mode's index map, or ``cval`` converted as the CPU converts it
(``np.asarray(cval).astype(dtype)``). Results equal the CPU's bit for bit. Plain C++ for NVRTC
and for g++ (``-DSK_HOST``): no thread reads another's data, so the host runs the threads one at
a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import codegen_cpp, modes

STRIP = 64
"""Rows per thread of the histogram kernel (the window's first fill is paid once per strip)."""

HUANG_SHARED = 32 * 1024
"""Shared memory per block of the histogram kernel: 256 bins per thread, of 8-bit counts
(windows of up to 255 elements: 128 threads) or 16-bit ones (64 threads); 16-bit data has two
levels of 256 bins (64 or 32 threads)."""

SELECT_BLOCK = (128, 1, 1)
"""Threads per block of the selection kernel."""

SELECT_SHARED = 48 * 1024
"""Shared memory of a block of the selection kernel: its threads' windows (up to 1536 bytes
a window, at 32 threads a block). In local memory, every thread the GPU holds keeps its window
(324 bytes for 9 x 9 float32: 87 MB on an H200, spilled far past the L1 caches), and the 9 x 9
float32 median of an 8192 x 8192 image took 344 ms on an H200 (tools/gpu_profile.py)."""


def select_threads(n, dtype) -> int:
    """Threads a block of ``sk_select`` whose buffers of ``n`` elements fit shared memory.

    128, 64 or 32; 0 where a 32-thread block's do not fit :data:`SELECT_SHARED` (the buffers
    then are local).
    """
    for threads in (128, 64, 32):
        if n * np.dtype(dtype).itemsize * threads <= SELECT_SHARED:
            return threads
    return 0


SELECT_BYTES = 2048
"""The largest window the selection kernel gathers into each thread's local memory (local
memory is reserved for every thread the GPU can hold: 2 KiB is 0.5 GB on an H100)."""

SCRATCH_BYTES = 64 << 20
"""Larger windows: the scratch array of one launch of ``sk_select_scratch`` (a window per
thread of a grid sized to fit it, interleaved so that a warp's accesses coalesce); the large
block medians' too (:mod:`.cuda_resample`)."""

OFFSETS_MAX = 8192
"""The most window offsets (elements x axes) a selection module holds in constant memory."""

BOX_MAX = 65535
"""The largest box a selection takes (elements; its offsets counted, not tabulated): 256 KiB
of float32 window a thread, 256 threads' windows in :data:`SCRATCH_BYTES`."""

_HUANG = tuple(map(np.dtype, (np.uint8, np.int8, np.bool_, np.uint16, np.int16)))


@dataclass(frozen=True)
class RankModule:
    """An emitted rank module and what launching it needs."""

    kernel: str         # "sk_huang" or "sk_select"
    source: str
    dtype: np.dtype
    ndim: int           # axes of the work array, batch first
    idx64: bool
    block: tuple = SELECT_BLOCK
    window: int = 0     # sk_select_scratch: the window's elements (a thread's scratch)

    @property
    def kernels(self) -> tuple:
        """The kernel names the module defines."""
        return (self.kernel,)

    def launches(self, shape):
        """``[(kernel, grid, block)]`` over a C-contiguous work array of ``shape``."""
        cdiv = codegen_cpp._cdiv
        if not math.prod(shape):
            return []
        if self.kernel == "sk_huang":
            B, n0, n1 = shape
            return [(self.kernel, (cdiv(n1, self.block[0]),
                                   min(cdiv(n0, STRIP), codegen_cpp.MAX_GRID_YZ),
                                   min(B, codegen_cpp.MAX_GRID_YZ)), self.block)]
        blocks = min(cdiv(math.prod(shape), self.block[0]), 1 << 20)
        if self.window:  # as many threads as the scratch array holds windows for
            per_block = self.window * self.dtype.itemsize * self.block[0]
            blocks = min(blocks, max(1, SCRATCH_BYTES // per_block))
        return [(self.kernel, (blocks, 1, 1), self.block)]

    def scratch_size(self, shape) -> int:
        """Elements of the scratch array a launch over ``shape`` takes (0: none)."""
        if not self.window:
            return 0
        return sum(self.window * grid[0] * block[0] for _, grid, block in self.launches(shape))

    def scalars(self, shape, mode, cval):
        """The scalar arguments after the two arrays, as NumPy scalars of the C++ types."""
        ix = np.int64 if self.idx64 else np.int32
        fill = np.asarray(cval).astype(self.dtype)[()] if mode == "constant" else \
            self.dtype.type(0)  # (the CPU's conversion; ignored by other modes)
        if self.dtype.kind == "b":
            fill = np.uint8(fill)
        return (*(ix(n) for n in shape), np.int32(modes.mode_code(mode)), fill)


def huang_fits(p, dtype, ndim) -> bool:
    """Whether the histogram kernel takes the ``Rank`` pass ``p`` on ``dtype`` data.

    Boxes of up to 65535 elements (16-bit counts) and :data:`SELECT_BYTES` of column indices
    (each thread keeps its window's, in local memory: wider windows would reserve that much
    for every thread the GPU holds).
    """
    fp = np.array(p.footprint, bool)
    return (np.dtype(dtype) in _HUANG and p.last2 and ndim >= 2 and bool(fp.all())
            and fp.size <= 65535 and fp.shape[-1] * 8 <= SELECT_BYTES)


def select_fits(p, dtype) -> bool:
    """Whether a selection kernel takes the ``Rank`` pass ``p`` on ``dtype`` data.

    Windows in local memory up to :data:`SELECT_BYTES`, larger ones in a scratch array: boxes
    up to :data:`BOX_MAX` elements, other footprints up to :data:`OFFSETS_MAX` offsets.
    """
    fp = np.array(p.footprint, bool)
    spans = [d for d in range(fp.ndim) if fp.shape[d] > 1]
    axes = fp.ndim - (spans[0] if spans else fp.ndim - 1)
    if np.dtype(dtype).kind not in "biuf":
        return False
    return fp.size <= BOX_MAX if fp.all() else int(fp.sum()) * axes <= OFFSETS_MAX


def _in_scratch(p, dtype) -> bool:
    """Whether the selection's window exceeds a thread's local buffer."""
    return p.size * np.dtype(dtype).itemsize > SELECT_BYTES


def generate_huang(dtype, k0, k1, lo0, lo1, rank, *, idx64) -> RankModule:
    """The histogram kernel of a ``k0 x k1`` box starting ``lo`` before each output.

    8-bit data: one histogram of 256 bins. 16-bit data: two levels (as the CPU's ``_huang16``,
    but without its 65536 fine bins, which no thread's share of shared memory holds): 256
    coarse bins of the values' high bytes, slid as the 8-bit histogram is, and 256 fine bins
    of the low bytes of the window's elements in one coarse bin, the median's; kept up to date
    as the window slides while the median stays in that bin, rebuilt from the window (``k0 *
    k1`` reads) when it moves to another.
    """
    dtype = np.dtype(dtype)
    ix = "sk_i64" if idx64 else "sk_i32"
    t = codegen_cpp._ctype_of(dtype)
    wide = dtype.itemsize == 2
    bias = {np.dtype(np.int8): 128, np.dtype(np.int16): 32768}.get(dtype, 0)
    count = "sk_u8" if k0 * k1 <= 255 else "sk_u16"
    per = 4 if count == "sk_u8" else 2  # counts per 32-bit word
    levels = 2 if wide else 1
    T = HUANG_SHARED // (levels * 256 * (4 // per))
    shift = per.bit_length() - 1
    params = (f"const {t}* __restrict__ src, {t}* __restrict__ dst, {ix} B, {ix} n0, {ix} n1, "
              f"int mode, {t} cval")
    names = "src, dst, B, n0, n1, mode, cval"
    value = f"((int)SK_RD(rr, cc) + {bias})" if bias else "((int)SK_RD(rr, cc))"
    if dtype == np.int8:
        value = f"((int)(sk_i8)SK_RD(rr, cc) + {bias})"

    def rows(first, body, indent="      "):
        """Loop over the window's row at ``first`` (an expression), ``v`` each value."""
        return [f"{indent}{{ const {ix} rr = sk_map({first}, n0, mode);",
                f"{indent}  for (int c = 0; c < {k1}; ++c) {{ const {ix} cc = cols[c]; "
                f"const int v = {value}; {body} }} }}"]

    def clear(h):
        return f"for (int v = 0; v < {256 // per}; ++v) ((sk_u32*){h})[v * {T} + tid] = 0;"

    if wide:  # leaving/entering values update the coarse bins, and the fine ones of `bin`
        leave = ("const int h = v >> 8; SK_BIN(hist, h) -= 1; below -= h < med; "
                 "if (h == bin) { SK_BIN(fine, v & 255) -= 1; fbelow -= (v & 255) < fmed; }")
        enter = ("const int h = v >> 8; SK_BIN(hist, h) += 1; below += h < med; "
                 "if (h == bin) { SK_BIN(fine, v & 255) += 1; fbelow += (v & 255) < fmed; }")
        fill = "SK_BIN(hist, v >> 8) += 1;"
    else:
        leave = "SK_BIN(hist, v) -= 1; below -= v < med;"
        enter = "SK_BIN(hist, v) += 1; below += v < med;"
        fill = "SK_BIN(hist, v) += 1;"
    walk = [f"      while (below > {rank}) {{ med -= 1; below -= SK_BIN(hist, med); }}",
            f"      while (below + SK_BIN(hist, med) <= {rank}) {{ below += SK_BIN(hist, med); "
            "med += 1; }"]
    if wide:
        walk += ["      if (med != bin) {  // the median left the fine bins' coarse bin",
                 f"        bin = med; fmed = 0; fbelow = 0; {clear('fine')}",
                 f"        for (int r = 0; r < {k0}; ++r)",
                 *rows(f"i + r - {lo0}", "if ((v >> 8) == bin) SK_BIN(fine, v & 255) += 1;",
                       "          "),
                 "      }",
                 f"      const int want = {rank} - below;  // the median's rank in its bin",
                 "      while (fbelow > want) { fmed -= 1; fbelow -= SK_BIN(fine, fmed); }",
                 "      while (fbelow + SK_BIN(fine, fmed) <= want) { "
                 "fbelow += SK_BIN(fine, fmed); fmed += 1; }",
                 f"      dst[b * n0 * n1 + i * n1 + j] = ({t})(((med << 8) | fmed) - {bias});"]
    else:
        walk += [f"      dst[b * n0 * n1 + i * n1 + j] = ({t})(med - {bias});"]
    what = ("two-level sliding histograms (high bytes; low bytes of the median's bin)" if wide
            else "sliding histograms")
    L = [f"// stencilkit rank {rank} of a {k0} x {k1} box ({dtype}): {what}",
         codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;", codegen_cpp._map_source(ix),
         "#ifdef SK_HOST",
         "#define __shared__",
         "#endif",
         "#define SK_RD(rr, cc) ((rr) < 0 || (cc) < 0 ? cval : plane[(rr) * n1 + (cc)])",
         "// a thread's bins: word (v / per) * T + tid holds bins v of its own, so a warp's",
         "// updates fall in 32 different banks whatever the values",
         f"#define SK_BIN(h, v) h[((((v) >> {shift}) * {T} + tid) << {shift}) + "
         f"((v) & {per - 1})]",
         f'extern "C" __global__ void sk_huang({params}) {{',
         f"  __shared__ {count} sk_hist[{levels} * 256 * {T}];",
         f"  {count}* hist = sk_hist;",
         *([f"  {count}* fine = sk_hist + 256 * {T};"] if wide else []),
         "  const int tid = threadIdx.x;",
         f"  const {ix} j = ({ix})blockIdx.x * {T} + tid;",
         "  if (j >= n1) return;",
         f"  {ix} cols[{k1}];",
         f"  for (int c = 0; c < {k1}; ++c) cols[c] = sk_map(j + c - {lo1}, n1, mode);",
         f"  for ({ix} b = blockIdx.z; b < B; b += gridDim.z)",
         f"  for ({ix} r0 = ({ix})blockIdx.y * {STRIP}; r0 < n0; r0 += ({ix})gridDim.y * "
         f"{STRIP}) {{",
         f"    const {ix} r1 = r0 + {STRIP} < n0 ? r0 + {STRIP} : n0;",
         f"    const {t}* __restrict__ plane = src + b * n0 * n1;",
         f"    {clear('hist')}",
         f"    for (int r = 0; r < {k0}; ++r)",
         *rows(f"r0 + r - {lo0}", fill),
         "    int med = 0, below = 0;  // the value (bin), and the window's elements below it",
         *(["    int bin = -1, fmed = 0, fbelow = 0;  // the same in the fine bins of `bin`"]
           if wide else []),
         f"    for ({ix} i = r0; i < r1; ++i) {{",
         "      if (i > r0) {  // the row leaving the window, the row entering it",
         *rows(f"i - 1 - {lo0}", leave, "        "),
         *rows(f"i + {k0 - 1 - lo0}", enter, "        "),
         "      }",
         *walk,
         "    }",
         "  }",
         "}",
         "#undef SK_RD",
         "#undef SK_BIN",
         codegen_cpp.host_launchers(("sk_huang",), params, names)]
    return RankModule("sk_huang", "\n".join(L) + "\n", dtype, 3, idx64, (T, 1, 1))


def generate_select(dtype, offsets, rank, ndim, *, idx64, scratch=False, box=None) -> RankModule:
    """The selection kernel of a window on ``ndim``-axis work arrays ``(B, *core)``.

    ``offsets``: per element of the window, in C order, its offset along each core axis (a
    table in constant memory); or ``box``: ``(shape, lo)``, a box of that shape along the core
    axes starting ``lo`` before each output, its offsets counted by nested loops in the same
    order (no table: any size the scratch array takes, :data:`BOX_MAX`).
    ``scratch``: the windows live in a device array passed after ``dst`` (``sk_select_scratch``;
    element ``e`` of thread ``g``'s window at ``e * threads + g``, so a warp's accesses
    coalesce), for windows larger than a thread's local buffer; else in shared memory where
    a block's buffers fit (:func:`select_threads`), or in local memory.
    """
    dtype = np.dtype(dtype)
    ix = "sk_i64" if idx64 else "sk_i32"
    t = codegen_cpp._ctype_of(dtype)
    k = ndim - 1
    n = math.prod(box[0]) if box else len(offsets)
    kernel = "sk_select_scratch" if scratch else "sk_select"
    shape = ", ".join(f"{ix} n{d}" for d in range(k))
    params = (f"const {t}* __restrict__ src, {t}* __restrict__ dst, "
              + (f"{t}* __restrict__ scratch, " if scratch else "")
              + f"{ix} B, {shape}, int mode, {t} cval")
    names = ("src, dst, " + ("scratch, " if scratch else "") + "B, "
             + ", ".join(f"n{d}" for d in range(k)) + ", mode, cval")
    table = "" if box else ", ".join(str(o) for offs in offsets for o in offs)
    total = " * ".join(["B", *(f"n{d}" for d in range(k))])
    first = f"({ix})blockIdx.x * ({ix})blockDim.x + ({ix})threadIdx.x"
    T = 0 if scratch else select_threads(n, dtype)
    where = (", windows in a scratch array" if scratch else
             f", windows in shared memory ({T} a block)" if T else ", windows in local memory")
    if scratch:
        buf = "scratch[(sk_i64)(e) * (sk_i64)stride + (sk_i64)me]"
    else:
        buf = f"sk_buf[(e) * {T} + threadIdx.x]" if T else "buf[e]"
    L = [f"// stencilkit rank {rank} of a window of {n} ({dtype}): a selection per element"
         + where,
         codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;", codegen_cpp._map_source(ix),
         "#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)",
         "#define __constant__",
         "#define __shared__",
         "#endif",
         *([] if box else [f"__constant__ int sk_offsets[{n * k}] = {{{table}}};"]),
         f"#define SK_BUF(e) {buf}",
         f'extern "C" __global__ void {kernel}({params}) {{',
         *([] if scratch else [f"  __shared__ {t} sk_buf[{n * T}];" if T else
                               f"  {t} buf[{n}];"]),
         f"  const {ix} total = {total};",
         f"  const {ix} stride = ({ix})gridDim.x * ({ix})blockDim.x;",
         f"  const {ix} me = {first};",
         f"  for ({ix} q = me; q < total; q += stride) {{",
         f"    {ix} rem = q;"]
    for d in reversed(range(k)):
        L.append(f"    const {ix} i{d} = rem % n{d}; rem /= n{d};")
    strides = []
    for d in range(k):
        strides.append(" * ".join([f"n{e}" for e in range(d + 1, k)]) or "1")
    plane = " * ".join(f"n{d}" for d in range(k))
    gather = (f"SK_BUF(e) = ({' || '.join(f'm{d} < 0' for d in range(k))}) ? cval : plane["
              + " + ".join(f"m{d} * ({s})" for d, s in enumerate(strides)) + "];")
    L.append(f"    const {t}* __restrict__ plane = src + rem * ({plane});")
    if box:  # the box's offsets by nested loops, in C order (the table's order)
        L.append("    int e = 0;")
        for d, (kd, lo) in enumerate(zip(*box)):
            pad = "    " + "  " * d
            L += [f"{pad}for (int a{d} = 0; a{d} < {kd}; ++a{d}) {{",
                  f"{pad}  const {ix} m{d} = sk_map(i{d} + (a{d} - {lo}), n{d}, mode);"]
        L.append("    " + "  " * k + gather + " ++e;")
        L += ["    " + "  " * d + "}" for d in reversed(range(k))]
    else:
        L += [f"    for (int e = 0; e < {n}; ++e) {{",
              *(f"      const {ix} m{d} = sk_map(i{d} + sk_offsets[e * {k} + {d}], n{d}, mode);"
                for d in range(k)),
              "      " + gather,
              "    }"]
    L += [f"    {t} res = SK_BUF({rank});",
          "    bool nan = false;"]
    if dtype.kind == "f":  # a NaN wins (the first in the window's order)
        L += [f"    for (int e = 0; e < {n}; ++e) if (SK_BUF(e) != SK_BUF(e)) "
              "{ res = SK_BUF(e); nan = true; break; }"]
    L += ["    if (!nan) {  // Hoare's quickselect, as the CPU's _select",
          *select_lines(t, str(rank), str(n), "res", "      "),
          "    }",
          "    dst[q] = res;",
          "  }",
          "}",
          "#undef SK_BUF",
          codegen_cpp.host_launchers((kernel,), params, names)]
    return RankModule(kernel, "\n".join(L) + "\n", dtype, ndim, idx64,
                      (T, 1, 1) if T else SELECT_BLOCK, window=n if scratch else 0)


def select_lines(t, k, n, res, indent) -> list:
    """C++ lines setting ``res`` to the ``k``-th smallest of ``SK_BUF(0)`` ... ``SK_BUF(n - 1)``.

    Values of C++ type ``t``, none of them NaN; ``k`` and ``n``: C++ expressions (int). Hoare's
    FIND (CACM 4(7), 1961, Algorithm 65) in the CPU's form (``cpu_lines.rank._select``: the
    middle element as the pivot, the same swaps, so the same element where values compare equal:
    signed zeros). It partitions the buffer as it goes: after it, ``SK_BUF(k)`` holds ``res``,
    no element before it is larger and none after it smaller.
    """
    lines = [f"int lo = 0, hi = ({n}) - 1;",
             "bool found = false;",
             "while (lo < hi) {",
             f"  const {t} pivot = SK_BUF((lo + hi) / 2);",
             "  int a = lo, z = hi;",
             "  while (a <= z) {",
             "    while (SK_BUF(a) < pivot) ++a;",
             "    while (SK_BUF(z) > pivot) --z;",
             f"    if (a <= z) {{ const {t} s = SK_BUF(a); SK_BUF(a) = SK_BUF(z); "
             "SK_BUF(z) = s; ++a; --z; }",
             "  }",
             f"  if (({k}) <= z) hi = z;",
             f"  else if (({k}) >= a) lo = a;",
             f"  else {{ {res} = SK_BUF({k}); found = true; break; }}",
             "}",
             f"if (!found) {res} = SK_BUF({k});"]
    return [indent + line for line in lines]


_MODULES: dict = {}


def module_for(p, dtype, ndim, idx64):
    """The module computing the ``Rank`` pass ``p`` on ``ndim``-d ``dtype`` data, or None.

    Returns ``(module, work_shape_of)``: ``work_shape_of(shape)`` the array's shape as the
    kernel takes it.
    """
    dtype = np.dtype(dtype)
    key = (p, dtype.str, ndim, idx64)
    found = _MODULES.get(key)
    if found is not None:
        return found
    fp = np.array(p.footprint, bool)
    if huang_fits(p, dtype, ndim):
        k0, k1 = fp.shape[-2:]
        mod = generate_huang(dtype, k0, k1, p.lo[-2], p.lo[-1], p.rank, idx64=idx64)

        def work_shape(shape):
            return (math.prod(shape[:-2]), *shape[-2:])
    elif select_fits(p, dtype):
        # axes the window spans (the others are batch, folded in front)
        spans = [d for d in range(ndim) if fp.shape[d] > 1]
        first = spans[0] if spans else ndim - 1
        box = (fp.shape[first:], tuple(p.lo[first:])) if fp.all() else None
        offsets = None if box else [tuple(int(idx[d]) - p.lo[d] for d in range(first, ndim))
                                    for idx in zip(*np.nonzero(fp))]
        mod = generate_select(dtype, offsets, p.rank, ndim - first + 1, idx64=idx64,
                              scratch=_in_scratch(p, dtype), box=box)

        def work_shape(shape):
            return (math.prod(shape[:first]), *shape[first:])
    else:
        return None
    _MODULES[key] = found = (mod, work_shape)
    return found


def run(x, p, mode, cval, out=None, out_dtype=None):
    """The ``Rank`` pass ``p`` over the device array ``x``, into ``out`` (or a new array).

    Returns None where neither kernel takes it. The kernels write ``x``'s dtype; another
    ``out_dtype`` is converted afterwards (as the CPU converts its result).
    """
    from . import cuda as cuda_backend
    from . import cuda_cpp, cuda_replay

    dtype = np.dtype(x.dtype)
    out_dtype = np.dtype(out_dtype or dtype)
    shape = tuple(x.shape)
    found = module_for(p, dtype, len(shape), math.prod(shape) >= 2**31)
    if found is None:
        return None
    token = cuda_replay.enter()
    mod, work_shape = found
    wshape = work_shape(shape)
    if not math.prod(wshape):
        return cuda_backend.deliver(cuda_backend.empty(shape, dtype, x), out, out_dtype)
    kernels = cuda_cpp.kernels(mod, False)
    pack = cuda_cpp.packer(kernels)
    calls = [(kernels[kname], grid, block, cuda_cpp.packed(pack, mod.scalars(wshape, mode, cval)))
             for kname, grid, block in mod.launches(wshape)]

    def launch(x, out):
        src = cuda_backend.work(x, (), False, wshape, dtype, x)
        direct = (out is not None and out_dtype == dtype and np.dtype(out.dtype) == dtype
                  and cuda_backend._contiguous(out)
                  and not cuda_backend.may_share_memory(out, x))
        dst = out.reshape(wshape) if direct else cuda_backend.empty(wshape, dtype, x)
        arrays = [cuda_cpp.as_cupy(src), cuda_cpp.as_cupy(dst)]
        if mod.window:
            arrays.append(cuda_cpp.as_cupy(cuda_backend.empty((mod.scratch_size(wshape),),
                                                              dtype, x)))
        for kernel, grid, block, scalars in calls:
            kernel(grid, block, (*arrays, *scalars))
        if direct:
            return out
        return cuda_backend.deliver(dst.reshape(shape), out, out_dtype)

    res = launch(x, out)
    cuda_replay.offer(token, x, out, res, launch)
    return res
