"""Side-by-side GPU benchmark: stencilkit's CUDA backend against its peers, in one run.

    python benchmarks/gpu.py [--quick] [--scale 1.0] [--rounds 10] [--only NAME]

Workloads (issue "CUDA backend at memory speed"): a 3 x 3 int8 mean on 16384^2 and on a
200 x 2048 x 2048 stack; a float32 5-point heat step on 8192^2 (one call, and per step of
``iterate``, also with temporal blocking); a Gaussian (sigma 2) on float32; a 15 x 15 uniform
filter, 5 x 5 and 15 x 15 medians, a 2 x 2 block mean, 4 x 4 and 32 x 32 block medians and
a 2 x 2 x 2 volume mean on uint8;
a 15 x 15 median on uint16; pyramid_down and decimate; then every filter of
tests/filter_table.py with each of its parameter sets, on uint8 and float32 8192^2, and
morphology (grey opening, top-hat and gradient, binary erosion, closing and hole filling),
and the generic filters (a Python loop per window, compiled by numba.cuda), each beside
cupyx.scipy.ndimage's function of the same name and arguments. Each beside, in the
same run: a device-to-device copy of as many bytes (the memory limit), the classic
hand-written numba.cuda kernel where there is one (``cuda.grid`` and an ``if 1 <= i < n - 1``
guard, as users write it today), cupyx.scipy.ndimage where CuPy is installed, and stencilkit's
numba.cuda fallback (``STENCILKIT_CUDA_CPP=0``) beside its generated CUDA C++.

Timing: interleaved rounds (each callable once per round, in turn), best of ``--rounds``; GPU
time from CUDA events around each call (CuPy), host time from a synchronised wall clock (the
call's Python overhead included). Prints the GPU time, bandwidth (bytes read + written, from
the GPU time), the ratio to the copy and the speed-up over cupyx and the classic kernel; and
for calls of up to 5 ms the "stream" time, a call's share of 8 queued back to back (the host
running ahead, as in a loop: without the wait for the host that one call's events include),
with its own ratio to the copy timed the same way.
Targets: the 3 x 3 mean >= 0.7 x copy, the heat step >= 0.9 x.

Without a GPU it says so and exits 0. ``--simulator`` runs the same code paths on tiny arrays
under numba's CUDA simulator (a smoke test of this script, not a measurement).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np
from numba import cuda

import stencilkit as sk
from stencilkit import filters, morphology, resample
from stencilkit.backends import cuda as cuda_backend

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from filter_table import TABLE  # noqa: E402


@sk.stencil(mode="skip")
def smooth(x):
    return (x[-1, -1] + x[-1, 0] + x[-1, 1] +
            x[0, -1] + x[0, 0] + x[0, 1] +
            x[1, -1] + x[1, 0] + x[1, 1]) // 9


@sk.stencil(mode="skip")
def heat(u):
    return u[0, 0] + np.float32(0.1) * (u[-1, 0] + u[1, 0] + u[0, -1] + u[0, 1]
                                        - np.float32(4) * u[0, 0])


# The hand-written numba.cuda twins users write today (2-D and stack), launched as the
# tutorials do: 16 x 16 threads, cuda.grid's x over the first axis. Module-level, so that the
# CUDA simulator finds `cuda` among their globals.

@cuda.jit
def classic2(a, out):
    i, j = cuda.grid(2)
    n, m = a.shape
    if 1 <= i < n - 1 and 1 <= j < m - 1:
        out[i, j] = (np.int64(a[i - 1, j - 1]) + a[i - 1, j] + a[i - 1, j + 1]
                     + a[i, j - 1] + a[i, j] + a[i, j + 1]
                     + a[i + 1, j - 1] + a[i + 1, j] + a[i + 1, j + 1]) // 9


@cuda.jit
def classic3(a, out):
    k, i, j = cuda.grid(3)
    f, n, m = a.shape
    if k < f and 1 <= i < n - 1 and 1 <= j < m - 1:
        out[k, i, j] = (np.int64(a[k, i - 1, j - 1]) + a[k, i - 1, j] + a[k, i - 1, j + 1]
                        + a[k, i, j - 1] + a[k, i, j] + a[k, i, j + 1]
                        + a[k, i + 1, j - 1] + a[k, i + 1, j] + a[k, i + 1, j + 1]) // 9


@cuda.jit
def classic_heat(u, out):
    i, j = cuda.grid(2)
    n, m = u.shape
    if 1 <= i < n - 1 and 1 <= j < m - 1:
        out[i, j] = u[i, j] + np.float32(0.1) * (u[i - 1, j] + u[i + 1, j] + u[i, j - 1]
                                                 + u[i, j + 1] - np.float32(4) * u[i, j])


def run2(kernel, a, out):
    """The classic 2-D launch."""
    n, m = a.shape
    kernel[(-(-n // 16), -(-m // 16)), (16, 16)](a, out)


def run3(a, out):
    """The classic stack launch."""
    f, n, m = a.shape
    classic3[(f, -(-n // 16), -(-m // 16)), (1, 16, 16)](a, out)


@contextlib.contextmanager
def fallback():
    """stencilkit's numba.cuda kernels instead of its generated CUDA C++."""
    old = os.environ.get("STENCILKIT_CUDA_CPP")
    os.environ["STENCILKIT_CUDA_CPP"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["STENCILKIT_CUDA_CPP"]
        else:
            os.environ["STENCILKIT_CUDA_CPP"] = old


def in_fallback(fn):
    def call():
        with fallback():
            fn()
    return call


def replays_off(fn):
    """``fn`` planned in full each call (no replay: :mod:`stencilkit.backends.cuda_replay`)."""
    from stencilkit.backends import cuda_replay

    def call():
        with cuda_replay.off():
            fn()
    return call


class Device:
    """Arrays, copies and timers on the GPU: CuPy when installed, numba device arrays otherwise."""

    def __init__(self):
        try:
            import cupy
            import cupyx.scipy.ndimage as cndi

            self.cupy, self.cndi = cupy, cndi
        except ImportError:
            self.cupy = self.cndi = None

    def put(self, host):
        return self.cupy.asarray(host) if self.cupy is not None else cuda.to_device(host)

    def empty_like(self, x):
        if self.cupy is not None:
            return self.cupy.empty_like(x)
        return cuda.device_array(x.shape, x.dtype)

    def copy(self, src, dst):
        if self.cupy is not None:
            self.cupy.copyto(dst, src)
        else:
            dst.copy_to_device(src)

    def sync(self):
        cuda_backend.synchronize()
        if self.cupy is not None:
            self.cupy.cuda.Device().synchronize()


STREAM = 8
"""Calls queued back to back for a row's "stream" time (calls of up to :data:`STREAM_MS`)."""

STREAM_MS = 5.0
"""The longest single call (ms) that is also timed in a stream."""


def best_times(table, dev, rounds):
    """``{name: (GPU seconds, host seconds, stream seconds)}``: best of ``rounds`` rounds.

    Interleaved rounds, each callable once per round, in turn. GPU time from CUDA events
    around one call (NaN without CuPy): it includes the time the GPU waits for the call's
    Python before its first launch. Host time from a synchronised wall clock around the same
    call. Stream time: the GPU time a call of :data:`STREAM` queued back to back (the host
    runs ahead, as in a loop of calls), for calls of up to :data:`STREAM_MS` (else NaN).
    """
    for fn in table.values():
        fn()  # compile and warm up
    dev.sync()
    nan = float("nan")
    best = {name: [float("inf"), float("inf"), float("inf")] for name in table}
    events = None
    if dev.cupy is not None:
        events = (dev.cupy.cuda.Event(), dev.cupy.cuda.Event())
    for _ in range(rounds):
        for name, fn in table.items():
            dev.sync()
            t0 = time.perf_counter()
            if events:
                events[0].record()
            fn()
            if events:
                events[1].record()
                events[1].synchronize()
            dev.sync()
            host = time.perf_counter() - t0
            best[name][1] = min(best[name][1], host)
            if not events:
                continue
            gpu = dev.cupy.cuda.get_elapsed_time(*events) / 1e3
            best[name][0] = min(best[name][0], gpu)
            if gpu * 1e3 <= STREAM_MS:
                dev.sync()
                events[0].record()
                for _ in range(STREAM):
                    fn()
                events[1].record()
                events[1].synchronize()
                stream = dev.cupy.cuda.get_elapsed_time(*events) / 1e3 / STREAM
                best[name][2] = min(best[name][2], stream)
    return {name: (gpu if events else nan, host, stream if stream != float("inf") else nan)
            for name, (gpu, host, stream) in best.items()}


COPY = "device-to-device copy (limit)"


def report(title, nbytes, results, peers=("cupyx", "classic")):
    """Print a table; speed-ups are over the rows whose names start with ``peers``."""
    def t_of(name):
        gpu, host, _ = results[name]
        return gpu if gpu == gpu else host  # NaN without CUDA events: the host time

    t_copy = t_of(COPY)
    s_copy = results[COPY][2]
    refs = {p: next((n for n in results if n.startswith(p)), None) for p in peers}
    clock = "GPU (events)" if results[COPY][0] == results[COPY][0] else "host"
    print(f"\n{title}  ({nbytes / 1e9:.3f} GB read + written per call; times: {clock}; "
          f"stream: a call of {STREAM} back to back)")
    print(f"  {'':<46} {'time':>9} {'host':>9} {'GB/s':>7} {'x copy':>7} {'stream':>9} "
          f"{'x copy':>7}" + "".join(f" {'vs ' + p:>11}" for p, r in refs.items() if r))
    for name in results:
        t, st = t_of(name), results[name][2]
        cols = [f"{t * 1e3:7.3f}ms", f"{results[name][1] * 1e3:7.3f}ms",
                f"{nbytes / t / 1e9:7.0f}", f"{t_copy / t:7.2f}", f"{st * 1e3:7.3f}ms",
                f"{s_copy / st:7.2f}"]
        for r in refs.values():
            if r:
                cols.append(f"{t_of(r) / t:10.1f}x")
        print(f"  {name:<46} " + " ".join(cols))


def _short(params):
    """Parameters as a short label (arrays by their shape)."""
    return " ".join(f"{k}=" + ("x".join(map(str, v.shape)) if isinstance(v, np.ndarray)
                                else str(v).replace(" ", ""))
                    for k, v in params.items())


def report_pairs(title, nbytes, results, pairs):
    """A table of stencilkit's calls, each beside its peer (``pairs``: (ours, theirs))."""
    def t_of(name):
        gpu, host, _ = results[name]
        return gpu if gpu == gpu else host

    t_copy = t_of(COPY)
    s_copy = results[COPY][2]
    print(f"\n{title}  ({nbytes / 1e9:.3f} GB read + written per call; x copy: "
          f"{t_copy * 1e3:.3f} ms / the call; stream: a call of {STREAM} back to back)")
    print(f"  {'':<44} {'time':>9} {'GB/s':>7} {'x copy':>7} {'stream':>9} {'x copy':>7} "
          f"{'peer':>9} {'speed-up':>9}")
    for ours, theirs in pairs:
        t, st = t_of(ours), results[ours][2]
        cols = [f"{t * 1e3:7.3f}ms", f"{nbytes / t / 1e9:7.0f}", f"{t_copy / t:7.2f}",
                f"{st * 1e3:7.3f}ms", f"{s_copy / st:7.2f}"]
        if theirs:
            cols += [f"{t_of(theirs) * 1e3:7.3f}ms", f"{t_of(theirs) / t:8.1f}x"]
        print(f"  {ours:<44} " + " ".join(cols))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 10")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="linear scale of every array side (0.25: a sixteenth of the data)")
    parser.add_argument("--only", help="run the workloads whose title contains this text "
                                       "(or one of several, separated by '|')")
    parser.add_argument("--geometry", action="store_true",
                        help="instead: sweep the C++ kernels' rows per strip, rows unrolled and "
                             "block shapes (3 x 3 int8 mean, heat step, a 17-tap column pass) "
                             "to choose stencilkit.codegen_cpp's ROWS / UNROLL / BLOCK_WORDS / "
                             "BLOCK_PLAIN")
    parser.add_argument("--simulator", action="store_true",
                        help="smoke-test the script under NUMBA_ENABLE_CUDASIM=1 on tiny arrays")
    args = parser.parse_args(argv)
    ok, why = sk.cuda_available(explain=True)
    if not ok:
        print(f"no GPU: {why}; GPU speed not measured")
        return 0
    if cuda_backend.simulated() and not args.simulator:
        print(f"{why}: timings would be meaningless; GPU speed not measured "
              "(--simulator runs this script's code paths on tiny arrays)")
        return 0
    scale = 1 / 512 if args.simulator else args.scale
    rounds = 1 if args.simulator else (3 if args.quick else args.rounds)
    side = max(16, int(16384 * scale))
    stack = (max(2, int(200 * min(1.0, scale * 4))), max(16, int(2048 * scale)),
             max(16, int(2048 * scale)))
    gside = max(16, int(8192 * scale))
    dev = Device()
    rng = np.random.default_rng(0)
    import numba

    print(f"stencilkit {sk.__version__}, numba {numba.__version__}, NumPy {np.__version__}, "
          f"CuPy {dev.cupy.__version__ if dev.cupy is not None else 'not installed'}")
    print(f"device: {why}")

    def wanted(title):
        return not args.only or any(part in title for part in args.only.split("|"))

    if args.geometry:
        return sweep_geometry(dev, rng, side, gside, rounds)

    def mean_table(host, classic):
        x = dev.put(host)
        out = dev.empty_like(x)
        table = {
            COPY: lambda: dev.copy(x, out),
            "stencilkit smooth(x, out=out)": lambda: smooth(x, out=out),
            "stencilkit smooth(x)": lambda: smooth(x),
            "stencilkit, numba.cuda fallback": in_fallback(lambda: smooth(x, out=out)),
            "classic numba.cuda kernel": lambda: classic(x, out),
        }
        if dev.cndi is not None:
            size = (1,) * (host.ndim - 2) + (3, 3)
            table["cupyx.scipy.ndimage.uniform_filter"] = \
                lambda: dev.cndi.uniform_filter(x, size, output=out)
        return table

    title = f"3 x 3 int8 mean, {side} x {side}"
    if wanted(title):
        a = rng.integers(0, 127, (side, side), dtype=np.int8)
        report(title, 2 * a.nbytes,
               best_times(mean_table(a, lambda x, o: run2(classic2, x, o)), dev, rounds))
    title = f"3 x 3 int8 mean, stack {stack}"
    if wanted(title):
        s = rng.integers(0, 127, stack, dtype=np.int8)
        report(title, 2 * s.nbytes, best_times(mean_table(s, run3), dev, rounds))
        del s

    title = f"heat step float32, {gside} x {gside}"
    if wanted(title):
        u = dev.put(rng.random((gside, gside), dtype=np.float32))
        uo = dev.empty_like(u)
        steps = 2 if args.simulator else 20
        report(title, 2 * u.nbytes * 1, best_times({
            COPY: lambda: dev.copy(u, uo),
            "stencilkit heat(u, out=o)": lambda: heat(u, out=uo),
            "stencilkit, replays off": replays_off(lambda: heat(u, out=uo)),
            "stencilkit, numba.cuda fallback": in_fallback(lambda: heat(u, out=uo)),
            "classic numba.cuda kernel": lambda: run2(classic_heat, u, uo),
        }, dev, rounds))
        table = {COPY: lambda: [dev.copy(u, uo) for _ in range(steps)],
                 f"stencilkit heat.iterate(u, steps={steps})":
                     lambda: heat.iterate(u, steps=steps)}
        for t in (1, 4, 8):  # temporal blocking: t steps a launch in shared memory (the
            # default: 8 for this state; 1: a launch a step)
            table[f"  block_steps={t}{' (tiled kernel)' if t > 1 else ''}"] = \
                lambda t=t: heat.iterate(u, steps=steps, block_steps=t)
        it = best_times(table, dev, rounds)
        report(f"{title}, {steps} steps per call (iterate; copy: {steps} copies)",
               2 * u.nbytes * steps, it)

    title = f"Gaussian sigma=2 float32, {gside} x {gside}"
    if wanted(title):
        g = rng.standard_normal((gside, gside)).astype(np.float32)
        x = dev.put(g)
        out = dev.empty_like(x)
        table = {COPY: lambda: dev.copy(x, out),
                 "stencilkit gaussian_filter(sigma=2)": lambda: filters.gaussian_filter(x, 2.0),
                 "stencilkit, replays off": replays_off(lambda: filters.gaussian_filter(x, 2.0))}
        if dev.cndi is not None:
            table["cupyx.scipy.ndimage.gaussian_filter"] = \
                lambda: dev.cndi.gaussian_filter(x, 2.0)
        report(title, 2 * g.nbytes, best_times(table, dev, rounds))

    u8 = rng.integers(0, 255, (gside, gside), dtype=np.uint8)
    x8 = dev.put(u8)
    o8 = dev.empty_like(x8)
    for title, ours, theirs in [
        (f"uniform_filter 15 x 15 uint8, {gside} x {gside}",
         lambda: filters.uniform_filter(x8, 15),
         lambda: dev.cndi.uniform_filter(x8, 15)),
        (f"median_filter 5 x 5 uint8, {gside} x {gside}",
         lambda: filters.median_filter(x8, 5),
         lambda: dev.cndi.median_filter(x8, 5)),
        (f"median_filter 15 x 15 uint8 (histograms), {gside} x {gside}",
         lambda: filters.median_filter(x8, 15),
         lambda: dev.cndi.median_filter(x8, 15)),
    ]:
        if wanted(title) and not args.simulator:
            table = {COPY: lambda: dev.copy(x8, o8), "stencilkit": ours,
                     "stencilkit, replays off": replays_off(ours)}
            if dev.cndi is not None:
                table["cupyx.scipy.ndimage"] = theirs
            report(title, 2 * u8.nbytes, best_times(table, dev, rounds))
    title = f"median_filter 15 x 15 uint16 (two-level histograms), {gside} x {gside}"
    if wanted(title) and not args.simulator:
        u16 = rng.integers(0, 65535, (gside, gside), dtype=np.uint16)
        x16 = dev.put(u16)
        o16 = dev.empty_like(x16)
        table = {COPY: lambda: dev.copy(x16, o16),
                 "stencilkit": lambda: filters.median_filter(x16, 15)}
        if dev.cndi is not None:
            table["cupyx.scipy.ndimage"] = lambda: dev.cndi.median_filter(x16, 15)
        report(title, 2 * u16.nbytes, best_times(table, dev, rounds))

    def image(dtype=np.uint8, n=side):
        """(host image, its device copy, a table holding the device copy of as many bytes)."""
        host = (rng.integers(0, 255, (n, n), dtype=np.uint8) if dtype == np.uint8
                else rng.random((n, n), dtype=np.float32))
        x = dev.put(host)
        out = dev.empty_like(x)
        return host, x, {COPY: lambda: dev.copy(x, out)}

    title = f"2 x 2 block mean uint8, {side} x {side}"
    if wanted(title):
        u, x, table = image()
        table["stencilkit block_reduce(x, 2)"] = lambda: resample.block_reduce(x, 2)
        if dev.cupy is not None:
            h = side // 2
            table["cupy reshape(...).mean((1, 3))"] = \
                lambda: x[:2 * h, :2 * h].reshape(h, 2, h, 2).mean((1, 3)).astype(np.uint8)
        report(title, u.nbytes * 5 // 4, best_times(table, dev, rounds), peers=("cupy",))

    title = f"block medians 4 x 4 and 32 x 32 uint8, {side} x {side}"
    if wanted(title) and not args.simulator:  # (4 x 4: a buffer; 32 x 32: a scratch array)
        u, x, table = image()
        for f in (4, 32):
            table[f"stencilkit block_reduce(x, {f}, 'median')"] = \
                lambda f=f: resample.block_reduce(x, f, "median")
            if dev.cupy is not None:
                h = side // f
                table[f"cupy median of the reshaped blocks, {f} x {f}"] = \
                    lambda f=f, h=h: dev.cupy.median(
                        x[:f * h, :f * h].reshape(h, f, h, f).transpose(0, 2, 1, 3)
                        .reshape(h, h, f * f), axis=-1)
        report(title, u.nbytes, best_times(table, dev, rounds), peers=("cupy",))

    vside = max(2, round((side * side) ** (1 / 3)) // 2 * 2)  # a volume of about side^2
    title = f"2 x 2 x 2 block mean uint8 volume, {vside}^3"
    if wanted(title):
        u = rng.integers(0, 255, (vside,) * 3, dtype=np.uint8)
        x = dev.put(u)
        out = dev.empty_like(x)
        h = vside // 2
        table = {COPY: lambda: dev.copy(x, out),
                 "stencilkit block_reduce(x, 2)": lambda: resample.block_reduce(x, 2)}
        if dev.cupy is not None:
            table["cupy reshape(...).mean((1, 3, 5))"] = \
                lambda: x.reshape(h, 2, h, 2, h, 2).mean((1, 3, 5)).astype(np.uint8)
        report(title, u.nbytes * 9 // 8, best_times(table, dev, rounds), peers=("cupy",))

    title = f"pyramid_down 1 level and decimate 2, uint8, {side} x {side}"
    if wanted(title):
        u, x, table = image()
        table["stencilkit pyramid_down(x)"] = lambda: resample.pyramid_down(x)[0]
        table["stencilkit decimate(x, 2)"] = lambda: resample.decimate(x, 2)
        if dev.cupy is not None:
            table["cupy x[::2, ::2].copy()"] = lambda: x[::2, ::2].copy()
        report(title, u.nbytes * 5 // 4, best_times(table, dev, rounds), peers=("cupy",))

    for dtype in (np.uint8, np.float32):
        title = f"every filter of tests/filter_table.py, {np.dtype(dtype)} {gside} x {gside}"
        if wanted(title):
            host, x, table = image(dtype, gside)
            pairs = []
            for e in TABLE:
                for params in e.params or ({},):
                    label = f"{e.name} {_short(params)}".strip()
                    table[label] = lambda e=e, params=params, x=x: e.stencilkit(x, params)
                    peer = None
                    if dev.cndi is not None:
                        peer = f"cupyx {label}"
                        cparams = {k: dev.cupy.asarray(v) if isinstance(v, np.ndarray) else v
                                   for k, v in params.items()}
                        table[peer] = (lambda e=e, cparams=cparams, x=x:
                                       getattr(dev.cndi, e.name)(x, **cparams))
                    pairs.append((label, peer))
            report_pairs(title, 2 * host.nbytes, best_times(table, dev, rounds), pairs)

    title = f"morphology, uint8 and bool {gside} x {gside}"
    if wanted(title):
        host, x, table = image(np.uint8, gside)
        b = dev.put(host > 127)
        cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
        calls = {"grey_opening size=15": lambda m: m.grey_opening(x, size=15),
                 "white_tophat size=15": lambda m: m.white_tophat(x, size=15),
                 "morphological_gradient cross": lambda m: m.morphological_gradient(
                     x, footprint=cross if m is morphology else dev.cupy.asarray(cross)),
                 "binary_erosion cross x3": lambda m: m.binary_erosion(b, iterations=3),
                 "binary_closing 3x3 box": lambda m: m.binary_closing(
                     b, np.ones((3, 3), bool) if m is morphology
                     else dev.cupy.ones((3, 3), bool)),
                 "binary_fill_holes": lambda m: m.binary_fill_holes(b)}
        pairs = []
        for label, call in calls.items():
            table[label] = lambda call=call: call(morphology)
            peer = None
            if dev.cndi is not None:
                peer = f"cupyx {label}"
                table[peer] = lambda call=call: call(dev.cndi)
            pairs.append((label, peer))
        report_pairs(title, 2 * host.nbytes, best_times(table, dev, rounds), pairs)

    title = f"generic filters (a Python function of each window), float32 {gside} x {gside}"
    if wanted(title):
        host, x, table = image(np.float32, gside)
        table["generic_filter loop sum 3x3"] = lambda: filters.generic_filter(
            x, _window_sum, size=3)
        table["generic_filter loop sum 5x5"] = lambda: filters.generic_filter(
            x, _window_sum, size=5)
        table["generic_filter1d running sum of 3"] = lambda: filters.generic_filter1d(
            x, _line_sum3, 3)
        pairs = [(label, None) for label in list(table)[1:]]
        if dev.cndi is not None:  # (cupyx takes CuPy kernels, not Python functions)
            total = dev.cupy.ReductionKernel("X x", "Y y", "x", "a + b", "y = a", "0", "wsum")
            for size in (3, 5):
                label = f"generic_filter loop sum {size}x{size}"
                table[f"cupyx {label}"] = lambda size=size: dev.cndi.generic_filter(
                    x, total, size=size)
                pairs[size // 2 - 1] = (label, f"cupyx {label}")
        report_pairs(title, 2 * host.nbytes, best_times(table, dev, rounds), pairs)
    return 0


def _window_sum(values):
    """A window's sum as users write one for generic_filter: a loop."""
    s = 0.0
    for v in values:
        s += v
    return s


def _line_sum3(line, result):
    for i in range(result.size):
        result[i] = line[i] + line[i + 1] + line[i + 2]


def sweep_geometry(dev, rng, side, gside, rounds):
    """Time the generated kernels over rows per strip x rows unrolled x block shapes."""
    from stencilkit import codegen_cpp

    saved = (codegen_cpp.ROWS, codegen_cpp.UNROLL, codegen_cpp.BLOCK_WORDS,
             codegen_cpp.BLOCK_PLAIN)
    cases = [
        ("3 x 3 int8 mean (words)", rng.integers(0, 127, (side, side), dtype=np.int8),
         lambda x, out: smooth(x, out=out), "BLOCK_WORDS", [(64, 4, 1), (128, 2, 1)]),
        ("heat float32 (one column per thread)", rng.random((gside, gside), dtype=np.float32),
         lambda x, out: heat(x, out=out), "BLOCK_PLAIN", [(128, 2, 1), (64, 4, 1)]),
        ("17 taps down the columns, float32 (a Gaussian's first pass)",
         rng.random((gside, gside), dtype=np.float32),
         lambda x, out: filters.gaussian_filter(x, 2.0, output=out, axes=(0,)), "BLOCK_PLAIN",
         [(128, 2, 1), (64, 4, 1)]),
    ]
    try:
        for title, host, run, which, blocks in cases:
            x = dev.put(host)
            out = dev.empty_like(x)
            table = {COPY: lambda x=x, out=out: dev.copy(x, out)}
            for rows in (16, 32, 64):
                for unroll in (1, 2, 4, 8):
                    for block in blocks:
                        def call(rows=rows, unroll=unroll, block=block, which=which, x=x,
                                 out=out, run=run):
                            codegen_cpp.ROWS, codegen_cpp.UNROLL = rows, unroll
                            setattr(codegen_cpp, which, block)
                            run(x, out)
                        table[f"rows {rows:>2} unroll {unroll} block {block[:2]}"] = call
            report(f"geometry: {title}, {host.shape}", 2 * host.nbytes,
                   best_times(table, dev, rounds), peers=())
    finally:
        (codegen_cpp.ROWS, codegen_cpp.UNROLL, codegen_cpp.BLOCK_WORDS,
         codegen_cpp.BLOCK_PLAIN) = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
