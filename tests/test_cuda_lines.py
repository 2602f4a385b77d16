"""The interior kernels start their threads on a 128-byte line (``codegen_cpp.LINE_BYTES``).

A warp whose first column sits one element past a line touches two lines per load and store:
on an H100 a row-strip copy ran at 0.68x of a device copy that way against 0.98x from a line's
start. Each family's interior kernel therefore counts its threads from the line holding its
first column (the separable sweeps' only with ``cuda_sep.LINES`` on: off by default, where
it gained nothing), and the threads before that column return at once. Checked here on the
host build of every family (no GPU needed): the launch plan's idle lead threads, that those
threads write nothing, that the next thread writes the interior's first columns, and that
results do not depend on the line's size.
"""

from __future__ import annotations

import numpy as np
import pytest

from stencilkit import codegen_cpp, modes
from stencilkit._passes import Sep2
from stencilkit.backends import cuda_box, cuda_median, cuda_minmax, cuda_sep, cuda_sweeps

cpp_host = pytest.importorskip("cpp_host")
if cpp_host.CXX is None:
    pytest.skip("no C++ compiler", allow_module_level=True)

F32, U8 = np.dtype(np.float32), np.dtype(np.uint8)
REFLECT = modes.mode_code("reflect")
SHAPE = (1, 24, 520)


def test_line_start_keeps_the_threads_columns():
    """``lead_threads``: the first thread starts at most a line before ``first``, in whole
    steps of a thread's units, on a line's start where the units divide both the line and
    ``first``; the kernels' C++ expression starts it there too."""
    for units in (1, 2, 4, 8):
        for unit_bytes in (1, 2, 4, 8, 16):
            line = codegen_cpp.line_of(unit_bytes, units)
            assert line % units == 0
            for first in range(0, 300, units):
                start = first - codegen_cpp.lead_threads(first, line, units) * units
                assert start <= first and (first - start) % units == 0
                assert first - start < line
                if units * unit_bytes <= codegen_cpp.LINE_BYTES:
                    assert start * unit_bytes % codegen_cpp.LINE_BYTES == 0
                expr = codegen_cpp.line_start_cpp("c0", line, units)
                assert eval(expr.replace("/", "//"), {"c0": first}) == start
    assert codegen_cpp.line_of(4, 3) == 3  # (3 does not divide 32: no alignment)
    assert codegen_cpp.lead_threads(7, 3, 3) == 0
    # (separable sweeps: the first column rounded up to whole threads; vector reads then
    # start before a window that does not start a vector, and end after it)
    assert cuda_sep.first_column(7, 2) == 8 and not cuda_sep.LINES
    assert cuda_sep.columns_line(F32, F32, 2, 8) == 2 == _gaussian(lines=False).line
    assert cuda_sep.vector_pad(7, 2, True) == 1 and cuda_sep.vector_pad(6, 4, True) == 2
    assert cuda_sep.vector_pad(8, 2, True) == cuda_sep.vector_pad(7, 2, False) == 0


def _stencil(dtype):
    from kernels import smooth

    return codegen_cpp.generate(smooth._spec, [dtype], dtype, np.dtype(np.int64), (),
                                idx64=False, fused=False)


def _gaussian(radius=8, lines=True):
    """A separable sweep's module, its threads from a line (``cuda_sep.LINES``, off by
    default: the machinery is the other families', tested here with it on)."""
    w = np.exp(-np.arange(-radius, radius + 1) ** 2 / 8.0)
    w = tuple(w / w.sum())
    sw = cuda_sep.sweep_of((Sep2(0, w, radius, w, radius, F32),), F32, F32, 2, "reflect", 0.0)
    saved, cuda_sep.LINES = cuda_sep.LINES, lines
    try:
        return cuda_sep.generate(F32, sw, idx64=False, rowmap=True, vec=True)
    finally:
        cuda_sep.LINES = saved


def _words(mod, shape, rows, k0, k1):
    return (*(np.int32(v) for v in (*shape, rows, k0, k1)), np.int32(REFLECT), np.int32(0))


def families():
    """Each family's interior launch on ``SHAPE``.

    ``(name, module, dtype, kernel, grid, block, step, c0, c1, lead, scalars)``: ``step`` the
    elements a thread owns, ``c0``/``c1`` the interior's columns, ``lead`` the idle threads
    the plan puts before them.
    """
    out = []
    for dtype, words in ((F32, False), (U8, True)):
        mod = _stencil(dtype)
        (kname, grid, block, (rows, c0, c1)), *_ = mod.launches(SHAPE, words, cpp_host.ROWS)
        step = mod.cols if words else 1
        lead = codegen_cpp.lead_threads(c0, mod.lines[words], step)
        out.append((f"stencil {dtype}{' words' if words else ''}", mod, dtype, kname, grid,
                    block, step, c0, c1, lead,
                    mod.scalars(SHAPE, rows, c0, c1, REFLECT, 0, 0, ())))

    def units(name, mod, dtype, scalars):
        (kname, grid, block, (rows, k0, k1)), *_ = mod.launches(SHAPE, cpp_host.ROWS)
        first, _, lead = cuda_sweeps.interior_units(SHAPE[2], mod.per, mod.ul, mod.ur,
                                                    mod.units, mod.line)
        assert first == k0
        return (name, mod, dtype, kname, grid, block, mod.per * mod.units, k0 * mod.per,
                k1 * mod.per, lead, scalars(mod, SHAPE, rows, k0, k1))

    box = cuda_box.generate(U8, U8, 1, 1, 1, 1, 9, (0, 255), words=True, idx64=False,
                            rowmap=True)
    out.append(units("box 3 x 3 uint8", box, U8,
                     lambda m, *a: cuda_box.scalars(m, *a, "reflect", 0)))
    box = cuda_box.generate(U8, U8, 7, 7, 7, 7, 225, (0, 255), words=True, idx64=False,
                            rowmap=True)
    out.append(units("box 15 x 15 uint8", box, U8,
                     lambda m, *a: cuda_box.scalars(m, *a, "reflect", 0)))
    for k in (3, 9):
        mm = cuda_minmax.generate(U8, k, k // 2, k, k // 2, True, idx64=False, rowmap=True)
        out.append(units(f"maximum {k} x {k} uint8", mm, U8, _words))
    med = cuda_median.generate(U8, 1, 1, words=True, idx64=False, rowmap=True)
    out.append(units("median 3 x 3 uint8", med, U8,
                     lambda m, *a: cuda_median.scalars(m, *a, "reflect", 0)))
    cells = [(r, c) for r in range(5) for c in range(5)]
    net = cuda_median.generate_network(U8, cells, 12, 2, 2, idx64=False, rowmap=True)
    out.append(units("median 5 x 5 uint8", net, U8, _words))
    for radius in (8, 7):  # (7: vector reads padded, cuda_sep.vector_pads)
        sep = _gaussian(radius)
        assert sep.vec
        (kname, grid, block, (rows, c0, c1)), *_ = sep.launches(SHAPE, cpp_host.ROWS)
        lead = codegen_cpp.lead_threads(c0, sep.line, sep.cols)
        out.append((f"gaussian float32, reach {radius}", sep, F32, kname, grid, block,
                    sep.cols, c0, c1, lead,
                    cuda_sep.scalars(sep, SHAPE, rows, c0, c1, "reflect", 0.0)))
    return out


FAMILIES = families()


@pytest.mark.parametrize("case", FAMILIES, ids=[c[0] for c in FAMILIES])
def test_interior_threads_start_on_a_line(case):
    """The interior kernel's threads count from the line holding its first column: the lead
    threads before it write nothing, the next one writes the interior's first columns."""
    name, mod, dtype, kname, grid, block, step, c0, c1, lead, scalars = case
    assert lead >= 1, name
    assert (c0 - lead * step) * dtype.itemsize % codegen_cpp.LINE_BYTES == 0, name
    assert grid[0] * block[0] >= lead + (c1 - c0) // step  # (threads for every column)
    rng = np.random.default_rng(0)
    x = (rng.random(SHAPE).astype(F32) if dtype == F32
         else rng.integers(0, 256, SHAPE).astype(U8))
    lib = cpp_host.build(mod.source)
    outs = []
    for threads in (lead, lead + 1):
        out = np.full(SHAPE, 77, dtype)
        cpp_host.launch(lib, mod.source, kname, (1, grid[1], grid[2]),
                        (threads, block[1], block[2]), [x, out, *scalars])
        outs.append(out)
    mid = slice(3, SHAPE[1] - 3)  # (rows the border never writes in the interior's columns)
    idle, one = (o[0, mid, c0:c1] != 77 for o in outs)
    assert not idle.any(), f"{name}: a lead thread wrote an output"
    assert one[:, :step].mean() > 0.9 and not one[:, step:].any(), name


@pytest.mark.parametrize("line_bytes", [0, 4, 4096])
def test_results_do_not_depend_on_the_line(line_bytes, monkeypatch):
    """No alignment (0), a line of one float (4), and a line wider than the image (4096: the
    first warps all idle) give the default's results, for a sweep and a stencil (both of its
    kernels); a module keeps the line it was emitted with when the setting changes after it,
    so that its launches still cover every column."""
    x = np.random.default_rng(1).random((2, 30, 300)).astype(F32)

    def sweep(mod):
        return cpp_host.run_sweep(mod, x, F32,
                                  lambda *a: cuda_sep.scalars(mod, *a, "reflect", 0.0),
                                  fill=np.nan)

    def stencil(mod, dtype, words):
        return cpp_host.run(mod, [(x * 255).astype(dtype)], np.full(x.shape, 7, dtype),
                            mode=REFLECT, words=words)

    cases = [(F32, False), (U8, False), (U8, True)]
    want = [sweep(_gaussian())] + [stencil(_stencil(d), d, w) for d, w in cases]
    monkeypatch.setattr(codegen_cpp, "LINE_BYTES", line_bytes)
    mods = [_gaussian()] + [_stencil(d) for d, _ in cases]
    if line_bytes == 4096:
        assert mods[0].line == 1024 and mods[1].lines == (1024, 0)
    monkeypatch.setattr(codegen_cpp, "LINE_BYTES", 128 if line_bytes != 128 else 0)
    got = [sweep(mods[0])] + [stencil(m, d, w) for m, (d, w) in zip(mods[1:], cases)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert not np.isnan(got[0]).any()


def test_a_changed_line_takes_new_modules(fake_gpu, monkeypatch):
    """Every route's module caches key on ``LINE_BYTES`` (the profile's "from the first
    column" rows switch it between calls): a call after a change compiles its module anew,
    and both give the CPU's results."""
    from kernels import sample, smooth
    from numba import cuda

    from stencilkit import filters

    monkeypatch.setattr(cuda_sep, "LINES", True)  # (the sweeps' switch: off by default)
    a8 = sample((40, 136), np.uint8, seed=5)
    a32 = sample((40, 136), np.float32, seed=6)
    calls = [(lambda x: smooth(x, target="cuda"), smooth, a32),
             (lambda x: filters.uniform_filter(x, 3), None, a8),
             (lambda x: filters.uniform_filter(x, 15), None, a8),
             (lambda x: filters.gaussian_filter(x, 2.0), None, a32),
             (lambda x: filters.maximum_filter(x, 3), None, a8),
             (lambda x: filters.median_filter(x, 3), None, a8)]
    for value in (codegen_cpp.LINE_BYTES, 0):
        monkeypatch.setattr(codegen_cpp, "LINE_BYTES", value)
        for call, cpu, host in calls:
            compiled = fake_gpu.compiled
            got = call(cuda.to_device(host)).copy_to_host()
            want = cpu(host) if cpu is not None else call(host)
            if host.dtype == F32:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
            else:
                np.testing.assert_array_equal(got, want)
            if value == 0:
                assert fake_gpu.compiled > compiled, call


@pytest.mark.parametrize("radius", [7, 2])  # (two columns a thread, pad 1; four, pad 2)
def test_padded_vector_reads_equal_scalar_reads(radius):
    """A separable sweep whose reach is not a multiple of a thread's columns reads vectors
    from before its window (``vector_pad``) to after it: equal, bit for bit, to the same
    sweep reading one value at a time, on rows of every width of whole vectors (``aligned``)
    up to a few threads past the window (the border takes what the interior leaves); under
    ``make asan`` no read leaves the arrays."""
    w = np.exp(-np.arange(-radius, radius + 1) ** 2 / 8.0)
    w = tuple(w / w.sum())
    sw = cuda_sep.sweep_of((Sep2(0, w, radius, w, radius, F32),), F32, F32, 2, "reflect", 0.0)
    vec = cuda_sep.generate(F32, sw, idx64=False, rowmap=True, vec=True)
    plain = cuda_sep.generate(F32, sw, idx64=False, rowmap=True, vec=False)
    assert vec.vec and not plain.vec and cuda_sep.vector_pad(vec.loh, vec.cols, True)
    rng = np.random.default_rng(radius)
    for n1 in range(vec.cols, 2 * radius + 4 * vec.cols + 3, vec.cols):  # (whole vectors)
        x = rng.random((1, 13, n1)).astype(F32)
        got, want = (cpp_host.run_sweep(m, x, F32,
                                        lambda *a, m=m: cuda_sep.scalars(m, *a, "reflect", 0.0),
                                        fill=np.nan) for m in (vec, plain))
        np.testing.assert_array_equal(got, want, err_msg=f"n1={n1}")
        assert not np.isnan(got).any()

