"""Generate the temporal-blocking kernel of a 2-D stencil: several steps per launch.

``Stencil.iterate(..., block_steps=T)`` on the GPU: each block of threads loads a tile of the
state with a halo ``T * radius`` deep into shared memory, advances it ``nsteps <= T`` steps
there (two buffers, a barrier between steps) and writes the tile's centre: the state crosses
device memory once per ``nsteps`` steps instead of once per step. It is the CPU backend's
cache tiling (``CpuBackend._iterate_tiled``) in shared memory, with the same region layout
(:mod:`stencilkit._regions`), so every mode stays exact: a region stops at the array's edge
(``wrap``: takes its halo from the other side instead) and each step applies the mode at the
region's edges. Where a region edge is the array's edge that is the array's own mode; where it
is not, the values it gives are wrong but lie in the halo, which shrinks by the radius every
step and is never written back. Each step computes only the rows and columns still exact.

One kernel, ``<name>_tiled``, for kernels of two core axes and no run-time-offset reads
(``mode='skip'``: the array's border band is set to ``cvout`` at every step, as step by step
does, and never read outside the array): the first array is the state, the others stay fixed
and are read from device memory at each region element's place in the array (through the
mode's index map, so that they are exact wherever the state is); the body and the output
conversion are the generated stencil's own (:mod:`stencilkit.codegen_cpp`), so results equal
step-by-step launches bit for bit. Plain C++ for NVRTC and for g++ (``-DSK_HOST``): there the
block's threads run one phase at a time (``SK_THREADS``: a loop over the threads around each stretch
of code between barriers; everything that crosses a barrier lives in shared memory or is
the same for every thread), so the tests run it on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _cpp_body, codegen_cpp, modes

BLOCK = (32, 8, 1)
"""Threads per block."""

TILE = (32, 64)
"""Output rows and columns per block, before the halo."""

SHARED_BYTES = 48 * 1024
"""Static shared memory a block may use: two buffers of the tile with its halo."""

COLUMNS = True
"""Whether each thread computes a step's elements down a column, a run of neighbouring rows
(``tools/gpu_profile.py``'s "tiled rows strided" row times it off).

Off, a block's 8 rows of threads stride the region's rows 8 apart, and each element's reads
come from shared memory afresh (5 loads for a 5-point step). On, in regions away from the
array's edges and for kernels without fixed arrays, a thread's rows are consecutive and
:data:`UNROLL` of them at a time read each value they share once (the heat step: 14 loads for
4 outputs instead of 20; ``__restrict__`` on the step's buffers and an unrolled row loop alone
did not make ptxas 12 reuse them). On an H200 the tiled heat step reached 0.83 of a copy a
step, its SASS's issue and shared-memory traffic both near 45% of the SMs' rates. On an H100
(2026-11-27, 20 heat steps of 8192^2 float32) runs of rows took 3.153 ms against 3.246, and
2.998 against 3.126 in a second run. Results are the same bit for bit
(tests/test_cuda_tiled.py)."""

UNROLL = 4
"""Rows a thread computes from one set of reads with :data:`COLUMNS`."""


def fits(radius, itemsize, steps):
    """``(steps, tile)``: the most steps up to ``steps`` that fit, and the tile, or None.

    Two buffers of the tile and its halo must fit :data:`SHARED_BYTES`; None when not even two
    steps do.
    """
    (rb0, ra0), (rb1, ra1) = radius
    for tile in (TILE, (32, 32), (16, 32)):
        t = steps
        while t >= 2:
            rh, rw = tile[0] + t * (rb0 + ra0), tile[1] + t * (rb1 + ra1)
            if 2 * rh * rw * itemsize <= SHARED_BYTES:
                return t, tile
            t -= 1
    return None


@dataclass(frozen=True)
class TiledModule:
    """An emitted temporal-blocking module and what launching it needs."""

    name: str
    source: str
    radius: tuple
    steps: int          # the most steps a launch takes (the halo's depth / radius)
    tile: tuple
    idx64: bool
    out_dtype: np.dtype
    acc: np.dtype
    params: tuple       # numba type names of the scalar parameters

    @property
    def kernels(self) -> tuple:
        """The kernel names the module defines."""
        return (f"{self.name}_tiled",)

    def launches(self, wshape):
        """``[(kernel, grid, block)]`` of one launch over a ``(B, n0, n1)`` state."""
        B, n0, n1 = wshape
        if B * n0 * n1 == 0:
            return []
        cdiv = codegen_cpp._cdiv
        grid = (cdiv(n1, self.tile[1]), cdiv(n0, self.tile[0]), min(B, codegen_cpp.MAX_GRID_YZ))
        return [(self.kernels[0], grid, BLOCK)]

    def scalars(self, wshape, nsteps, mode, cval, cvout, params):
        """The scalar kernel arguments after the arrays, as NumPy scalars of the C++ types."""
        it = np.int64 if self.idx64 else np.int32
        return ([it(v) for v in wshape] + [np.int32(nsteps), np.int32(mode)]
                + codegen_cpp.typed_tail(self, cval, cvout, params))


def unsupported(spec, in_dtypes, out_dtype, mode):
    """Why ``spec`` has no tiled kernel for these types and mode (a phrase), or None."""
    if spec.ndim != 2:
        return f"{spec.ndim} core axes (the tiled kernel takes 2)"
    if np.dtype(in_dtypes[0]) != np.dtype(out_dtype):
        return f"the state is computed as {in_dtypes[0]} but stored as {out_dtype}"
    return None


def generate(spec, in_dtypes, out_dtype, acc, param_types, *, idx64: bool, narrow: bool,
             steps: int) -> TiledModule:
    """Emit the tiled module of ``spec`` taking up to ``steps`` steps a launch.

    ``steps`` must fit (:func:`fits`); raises :class:`stencilkit._cpp_body.Unsupported` when the
    emitter does not cover the body or the kernel reads at run-time offsets.
    """
    in_dtypes = tuple(np.dtype(d) for d in in_dtypes)
    out_dtype, acc = np.dtype(out_dtype), np.dtype(acc)
    name = spec.name
    req = _cpp_body.BodyRequest(acc=acc, input_dtypes=dict(zip(spec.arrays, in_dtypes))
                                if narrow else {a: acc for a in spec.arrays},
                                param_types=tuple(param_types))
    body = _cpp_body.emit(spec, req, f"{name}_body")
    if body.readers:
        raise _cpp_body.Unsupported("reads at run-time offsets (the tiled kernel)")
    em = codegen_cpp._Emitter(spec, body, _cpp_body.reads_of(spec), in_dtypes, out_dtype, acc,
                              tuple(param_types), idx64)
    found = fits(spec.radius, out_dtype.itemsize, steps)
    if found is None or found[0] != steps:
        raise ValueError(f"{steps} steps do not fit the tiled kernel's shared memory")
    tile = found[1]
    source = _source(em, steps, tile)
    return TiledModule(name=name, source=source, radius=spec.radius, steps=steps, tile=tile,
                       idx64=idx64, out_dtype=out_dtype, acc=acc,
                       params=tuple(str(t) for t in param_types))


def _source(em, T, tile) -> str:
    ix, oc, s = em.idx, em.out_c, em.spec
    a = s.arrays[0]  # the state; the other arrays stay fixed, read from device memory
    (rb0, ra0), (rb1, ra1) = s.radius
    TH, TW = tile
    RH, RW = TH + T * (rb0 + ra0), TW + T * (rb1 + ra1)
    params = ", ".join([*(f"const {codegen_cpp._ctype_of(em.dtype(x))}* __restrict__ {x}_"
                          for x in s.arrays),
                        f"{oc}* __restrict__ sk_out", f"{ix} B", f"{ix} n0", f"{ix} n1",
                        "int nsteps", "int mode", f"{em.acc_c} cval", f"{oc} cvout",
                        *(f"{c} {p}_" for c, p in zip(em.body.param_ctypes, s.params))])
    names = ", ".join([*(f"{x}_" for x in s.arrays), "sk_out", "B", "n0", "n1", "nsteps",
                       "mode", "cval", "cvout", *(f"{p}_" for p in s.params)])

    def name(prefix, d, o):
        return f"{prefix}{d}_{'m' if o < 0 else 'p'}{abs(o)}"

    # the state's reads: in the region's shared memory (through the mode at its edges); a fixed
    # array's: in device memory at the region element's place in the array (the mode's map)
    maps, fixed_maps = {}, {}
    direct, mapped = [], []
    for x, offs in em.reads:
        if x == a:
            q0, q1 = (maps.setdefault((d, o), name("q", d, o)) for d, o in enumerate(offs))
            direct.append(em.widen(a, f"sk_src[(r + ({offs[0]})) * {RW} + (c + ({offs[1]}))]"))
            mapped.append(f"(({q0} >= 0 && {q1} >= 0) ? "
                          f"{em.widen(a, f'sk_src[{q0} * {RW} + {q1}]')} : ({em.arg_c[a]})cval)")
        else:
            f0, f1 = (fixed_maps.setdefault((d, o), name("f", d, o)) for d, o in enumerate(offs))
            value = (f"(({f0} >= 0 && {f1} >= 0) ? "
                     f"{em.widen(x, f'{x}_[b * n0 * n1 + {f0} * n1 + {f1}]')} : "
                     f"({em.arg_c[x]})cval)")
            direct.append(value)
            mapped.append(value)
    map_lines = [f"            const {ix} {q} = sk_map({'r' if d == 0 else 'c'} + ({o}), "
                 f"{'h' if d == 0 else 'w'}, mode);" for (d, o), q in sorted(maps.items())]
    fixed_lines = []
    if fixed_maps:
        fixed_lines = [
            f"            const {ix} gr = sk_map(g0 + r, n0, mode);",
            f"            const {ix} gc = sk_map(e0 + c, n1, mode);",
            *(f"            const {ix} {q} = sk_map({'gr' if d == 0 else 'gc'} + ({o}), "
              f"n{d}, mode);" for (d, o), q in sorted(fixed_maps.items()))]
    head = [f"// Generated by stencilkit from kernel {s.name!r} (temporal blocking); do not edit.",
            "// The kernel's source, for reference:",
            *("//   " + line for line in s.source.splitlines()),
            f"// Up to {T} steps a launch; tiles of {TH} x {TW} outputs, regions of at most "
            f"{RH} x {RW} in shared memory, twice."]
    def loops(pad):
        """The loops over a step's elements ``r``, ``c``: a block's rows of threads 8 apart."""
        return (f"{pad}for ({ix} r = lo0 + ({ix})threadIdx.y; r < hi0; r += ({ix})blockDim.y)"
                f"\n{pad}  for ({ix} c = lo1 + ({ix})threadIdx.x; c < hi1; "
                f"c += ({ix})blockDim.x) {{")

    inner_loops = "\n".join([
        loops("          "), *("  " + line for line in fixed_lines),
        f"              sk_dst[r * {RW} + c] = {em.call(direct, None)};", "            }"])
    if COLUMNS and not fixed_maps:  # runs of UNROLL rows, each value read once a run
        offs = [o for _, o in em.reads]
        held = sorted({(k + o0, o1) for k in range(UNROLL) for o0, o1 in offs})

        def value(d, o):
            return f"v{'m' if d < 0 else 'p'}{abs(d)}_{'m' if o < 0 else 'p'}{abs(o)}"

        inner_loops = "\n".join([
            f"          const {ix} run = (hi0 - lo0 + ({ix})blockDim.y - 1) / ({ix})blockDim.y;",
            f"          const {ix} ra = lo0 + ({ix})threadIdx.y * run, "
            "rz = ra + run < hi0 ? ra + run : hi0;",
            f"          for ({ix} c = lo1 + ({ix})threadIdx.x; c < hi1; c += ({ix})blockDim.x) {{",
            f"            {ix} r = ra;",
            f"            for (; r + {UNROLL} <= rz; r += {UNROLL}) {{",
            *(f"              const {em.arg_c[a]} {value(d, o)} = "
              f"{em.widen(a, f'sk_src[(r + ({d})) * {RW} + (c + ({o}))]')};" for d, o in held),
            *(f"              sk_dst[(r + {k}) * {RW} + c] = "
              f"{em.call([value(k + o0, o1) for o0, o1 in offs], None)};"
              for k in range(UNROLL)),
            "            }",
            "            for (; r < rz; ++r)",
            f"              sk_dst[r * {RW} + c] = {em.call(direct, None)};",
            "          }"])

    kernel = f"""
#ifdef SK_HOST
// the block's threads one after another, between barriers; shared memory: the block's call's
#define __shared__
#define SK_THREADS for (threadIdx.y = 0; threadIdx.y < blockDim.y; ++threadIdx.y) \\
                   for (threadIdx.x = 0; threadIdx.x < blockDim.x; ++threadIdx.x)
#define SK_SYNC() do {{}} while (0)
#else
#define SK_THREADS
#define SK_SYNC() __syncthreads()
#endif

extern "C" __global__ void {s.name}_tiled({params}) {{
  __shared__ {oc} sk_buf[2 * {RH * RW}];
  const {ix} R0 = ({ix})blockIdx.y * {TH}, C0 = ({ix})blockIdx.x * {TW};
  const {ix} te0 = R0 + {TH} < n0 ? R0 + {TH} : n0, te1 = C0 + {TW} < n1 ? C0 + {TW} : n1;
  // the region: the tile and its halo, cut at the array's edges (wrap: from the other side;
  // its elements' places in the array are then sk_map's, in range for the other modes)
  const bool wrap = mode == {modes.WRAP}, skip = mode == {modes.SKIP};
  {ix} g0 = R0 - nsteps * {rb0}, g1 = te0 + nsteps * {ra0};
  {ix} e0 = C0 - nsteps * {rb1}, e1 = te1 + nsteps * {ra1};
  if (!wrap) {{
    g0 = g0 < 0 ? 0 : g0; g1 = g1 > n0 ? n0 : g1;
    e0 = e0 < 0 ? 0 : e0; e1 = e1 > n1 ? n1 : e1;
  }}
  const {ix} h = g1 - g0, w = e1 - e0;
  // region edges on the array's edges: every row (column) up to them stays exact
  const bool top = !wrap && g0 == 0, bottom = !wrap && g1 == n0;
  const bool left = !wrap && e0 == 0, right = !wrap && e1 == n1;
  // a region away from the array's edges (every region, for wrap): each step's rows and
  // columns keep their reads inside it, and the array's border band (skip) lies outside
  const bool inner = !top && !bottom && !left && !right;
  for ({ix} b = blockIdx.z; b < B; b += gridDim.z) {{
    const {codegen_cpp._ctype_of(em.dtype(a))}* __restrict__ src = {a}_ + b * n0 * n1;
    SK_THREADS {{
      for ({ix} r = ({ix})threadIdx.y; r < h; r += ({ix})blockDim.y) {{
        const {ix} gr = sk_map(g0 + r, n0, mode);
        for ({ix} c = ({ix})threadIdx.x; c < w; c += ({ix})blockDim.x)
          sk_buf[r * {RW} + c] = src[gr * n1 + (sk_map(e0 + c, n1, mode))];
      }}
    }}
    SK_SYNC();
    int cur = 0;
    for (int s = 1; s <= nsteps; ++s) {{
      const {oc}* sk_src = sk_buf + cur * {RH * RW};
      {oc}* sk_dst = sk_buf + (1 - cur) * {RH * RW};
      const {ix} lo0 = top ? 0 : s * {rb0}, hi0 = bottom ? h : h - s * {ra0};
      const {ix} lo1 = left ? 0 : s * {rb1}, hi1 = right ? w : w - s * {ra1};
      if (inner) {{  // (block-uniform) every element computed reads inside the region
        SK_THREADS {{
{inner_loops}
        }}
      }} else SK_THREADS {{
{loops("        ")}
{chr(10).join(fixed_lines)}
            if (skip && (g0 + r < {rb0} || g0 + r >= n0 - {ra0} || e0 + c < {rb1} ||
                         e0 + c >= n1 - {ra1})) {{  // the array's border: cvout every step
              sk_dst[r * {RW} + c] = cvout;
              continue;
            }}
            if (r >= {rb0} && r < h - {ra0} && c >= {rb1} && c < w - {ra1}) {{
              sk_dst[r * {RW} + c] = {em.call(direct, None)};
              continue;
            }}
{chr(10).join(map_lines)}
            sk_dst[r * {RW} + c] = {em.call(mapped, None)};
          }}
      }}
      SK_SYNC();
      cur = 1 - cur;
    }}
    const {oc}* sk_res = sk_buf + cur * {RH * RW};
    {oc}* dst = sk_out + b * n0 * n1;
    SK_THREADS {{
      for ({ix} r = R0 + ({ix})threadIdx.y; r < te0; r += ({ix})blockDim.y)
        for ({ix} c = C0 + ({ix})threadIdx.x; c < te1; c += ({ix})blockDim.x)
          dst[r * n1 + c] = sk_res[(r - g0) * {RW} + (c - e0)];
    }}
    SK_SYNC();
  }}
}}

#ifdef SK_HOST
// host emulation for the tests: each block once (its threads loop inside, phase by phase)
{codegen_cpp.host_signature(f"{s.name}_tiled", params)}
extern "C" void {s.name}_tiled_host(unsigned sk_gx, unsigned sk_gy, unsigned sk_gz,
    unsigned sk_bx, unsigned sk_by, unsigned sk_bz, {params}) {{
  gridDim.x = sk_gx; gridDim.y = sk_gy; gridDim.z = sk_gz;
  blockDim.x = sk_bx; blockDim.y = sk_by; blockDim.z = sk_bz;
  threadIdx.z = 0;
  for (unsigned sk_z = 0; sk_z < sk_gz; ++sk_z)
  for (unsigned sk_y = 0; sk_y < sk_gy; ++sk_y)
  for (unsigned sk_x = 0; sk_x < sk_gx; ++sk_x) {{
    blockIdx.x = sk_x; blockIdx.y = sk_y; blockIdx.z = sk_z;
    {s.name}_tiled({names});
  }}
}}
#endif
"""
    parts = ["\n".join(head), codegen_cpp.PRELUDE, f"typedef {ix} sk_idx;",
             codegen_cpp._map_source(ix),
             codegen_cpp._store_source(f"{s.name}_store", em.body.return_ctype,
                                       em.body.return_type, em.out_dtype),
             em.body.text, kernel]
    return "\n\n".join(parts) + "\n"
