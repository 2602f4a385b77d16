"""The host's share of a GPU call, without a GPU: microseconds of Python per call.

CUDA events around a single call count the time the GPU waits for the host to plan and launch
it, so for fast kernels this time weighs on ``benchmarks/gpu.py``'s ratios. Here the C++ path
runs through the tests' stand-in CuPy (tests/cpp_host.py), on its stand-in CuPy arrays (or
with ``--arrays numba`` the CUDA simulator's device arrays), with every launch replaced by
nothing: what is left is stencilkit's own work per call (plus the stand-in arrays' Python
attribute lookups, where CuPy's are compiled). The count of calls answered by a replay
(:mod:`stencilkit.backends.cuda_replay`) is printed beside each, and how many of them were
replays of the whole call (the others: a stencil's replay inside a call whose other steps
ran in full).

    NUMBA_ENABLE_CUDASIM=1 python tools/host_time.py [--calls 300] [--rounds 1]

On a machine with a GPU, ``--gpu`` times the same calls with the real CuPy and real launches
(small arrays, no synchronisation between calls: the host's enqueue time a call, which a
single call's CUDA events count while the GPU waits), and ``--profile NAME`` prints where
that call's host time goes (cProfile, by own time): the stand-in's arrays cost Python per
attribute, CuPy's are compiled, so only this tells what a call costs there.

    python tools/host_time.py --gpu [--profile "stencil call"] [--breakdown] [--arguments]

``--breakdown`` (with ``--gpu``) splits each call's time: its launches alone (the recorded
RawKernel calls, relaunched with the same arguments: CuPy's and the driver's share), those
launches' GPU time (CUDA events around them, queued), and the call with a synchronisation
after each (host and GPU in series). What is left of the plain figure is stencilkit's
Python, CuPy's array calls (``empty``, ``reshape``) and the replay's lookups. (With it every
launch goes through a logging wrapper, a few tenths of a microsecond on each figure.)
``--arguments`` (with ``--gpu``) times bare launches of an empty kernel with two arrays and
ten scalars of each of a few NumPy types: what a launch's scalar arguments cost in CuPy, and
the same scalars converted once beforehand (:func:`stencilkit.backends.cuda_cpp.packer`).
Without ``--gpu``, where the real CuPy imports but no GPU is present, it times CuPy's own
conversion of the arguments alone: a launch of a kernel never loaded, on a stand-in stream,
which converts every argument and then fails at CUDA's context (checked: an argument CuPy
cannot convert raises its TypeError first).

    python tools/host_time.py --arguments        # CuPy installed, no GPU needed

``--arrays cupy-nogpu`` (CuPy installed, no GPU needed, the simulator off) runs the calls on
the real CuPy's arrays, over device addresses that were never allocated (CuPy's allocator
set to hand out unowned pointers), with every launch stubbed (not counted; the scalars
packed as for CuPy's own kernels, :func:`stencilkit.backends.cuda_cpp.packer`): stencilkit's
own work a call on CuPy's compiled arrays, and whether the calls replay whole there, as the
stand-in cannot tell. Nothing reads or writes the arrays; a call that would (a CuPy
elementwise kernel, a copy) fails at CUDA's context, and the tool says which.

    python tools/host_time.py --arrays cupy-nogpu [--profile NAME]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def main(argv=None):
    """Print microseconds per call of a few device calls, launches stubbed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=1,
                    help="time every call this many times, interleaved, and keep the least")
    ap.add_argument("--arrays", choices=("cupy", "numba", "cupy-nogpu"), default="cupy",
                    help="the inputs: stand-in CuPy arrays (default; as CuPy users call), "
                         "the simulator's numba device arrays (each wrapped per launch), or "
                         "the real CuPy's arrays over unallocated addresses (no GPU needed; "
                         "see the module docstring)")
    ap.add_argument("--gpu", action="store_true",
                    help="the real CuPy and launches, on a machine with a GPU")
    ap.add_argument("--profile", metavar="NAME",
                    help="print cProfile's table for the calls whose name starts with NAME "
                         "(or one of several, separated by '|')")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time each call's launches alone, their GPU time, and the call "
                         "synchronised (see the module docstring)")
    ap.add_argument("--arguments", action="store_true",
                    help="time launches of an empty kernel by its arguments' types (without "
                         "--gpu: CuPy's conversion of them alone, no GPU needed)")
    args = ap.parse_args(argv)
    if args.arguments and not args.gpu:
        return _conversion(args.calls * 10, max(args.rounds, 5))
    from numba import cuda

    from stencilkit import filters, resample
    from stencilkit.backends import cuda as cuda_backend
    from stencilkit.backends import cuda_cpp

    if args.gpu:
        import cupy

        put, sync = cupy.asarray, cupy.cuda.Device().synchronize
    elif args.arrays == "cupy-nogpu":
        put, sync = _cupy_without_gpu(cuda_backend, cuda_cpp)
    else:
        import cpp_host

        if not cuda_backend.simulated():
            sys.exit("run with NUMBA_ENABLE_CUDASIM=1 (the stand-in CuPy needs the simulator)")
        fake = cpp_host.FakeCupy()
        fake.fill_empty = False  # (CuPy's empty does not fill: nor does the stand-in's here)
        sys.modules.update({"cupy": fake, "cupy.cuda": fake.cuda,
                            "cupy.cuda.compiler": fake.cuda.compiler})
        cuda_cpp.available = lambda: (True, "a stand-in CuPy (host_time)")
        put = fake.asarray if args.arrays == "cupy" else cuda.to_device

        def sync():
            pass
    if args.arguments and args.gpu:
        _arguments(put, sync, args.calls)
    from kernels import diffuse

    rng = np.random.default_rng(0)
    weights = np.array([[1, -2, 0], [3, 1, -1], [0, 2, 1]])  # (tests/filter_table.py's)
    u8 = put(rng.integers(0, 255, (256, 256)).astype(np.uint8))
    f32 = put(rng.random((256, 256)).astype(np.float32))
    calls = {
        "stencil call (heat step)": lambda: diffuse(f32, 0.1),
        "iterate 10 steps, per step": lambda: diffuse.iterate(f32, 0.1, steps=10),
        "uniform_filter 15 uint8": lambda: filters.uniform_filter(u8, 15),
        "gaussian_filter 2 uint8": lambda: filters.gaussian_filter(u8, 2.0),
        "median_filter 3 uint8": lambda: filters.median_filter(u8, 3),
        "maximum_filter 3 uint8": lambda: filters.maximum_filter(u8, 3),
        "sobel float32": lambda: filters.sobel(f32),
        "sobel uint8": lambda: filters.sobel(u8),
        "correlate 3 x 3 uint8": lambda: filters.correlate(u8, weights),
        "uniform_filter 3 uint8": lambda: filters.uniform_filter(u8, 3),
        "block_reduce 2 mean uint8": lambda: resample.block_reduce(u8, 2, "mean"),
        "pyramid_down 1 level uint8": lambda: resample.pyramid_down(u8, 1),
    }
    out = put(np.zeros((256, 256), np.float32))
    calls["stencil call, out= (heat step)"] = lambda: diffuse(f32, 0.1, out=out)
    launched = _Log()  # (kernel, grid, block, args) of the launches while it is on
    if args.breakdown:
        real_kernels = cuda_cpp.kernels
        cuda_cpp.kernels = lambda mod, fastmath: {
            k: _Recorded(f, launched) for k, f in real_kernels(mod, fastmath).items()}
    for name, fn in calls.items():  # compile (g++ or NVRTC) and run once for real
        try:
            fn()
        except Exception as exc:
            if args.arrays != "cupy-nogpu":
                raise
            sys.exit(f"{name}: {type(exc).__name__}: {exc} (a call that needs the device: "
                     "CuPy's own kernels or copies cannot run without a GPU)")
    if not args.gpu and args.arrays != "cupy-nogpu":
        real = cuda_cpp.kernels
        def stub(grid, block, args):
            pass

        cuda_cpp.kernels = lambda mod, fastmath: {
            k: _Recorded(stub, launched) if args.breakdown else stub for k in real(mod, fastmath)}
    from stencilkit.backends import cuda_replay

    for fn in calls.values():
        fn()  # (the stubs' first call records anew: the patch above is a changed setting)
    sync()
    best, replays, wholes = {}, dict.fromkeys(calls, 0), dict.fromkeys(calls, 0)
    for _ in range(args.rounds):  # (rounds interleave the calls: a noisy machine's least)
        for name, fn in calls.items():
            replayed, whole = cuda_replay.REPLAYED[0], cuda_replay.WHOLE[0]
            t = time.perf_counter()
            for _ in range(args.calls):
                fn()
            per = (time.perf_counter() - t) / args.calls * 1e6
            sync()
            best[name] = min(best.get(name, per), per)
            replays[name] += cuda_replay.REPLAYED[0] - replayed
            wholes[name] += cuda_replay.WHOLE[0] - whole
    for name, fn in calls.items():
        per = best[name] / (10 if name.startswith("iterate") else 1)
        print(f"{name:<32} {per:7.1f} us  ({replays[name]} replays, {wholes[name]} of whole "
              "calls)", flush=True)
        if args.breakdown:
            _breakdown(fn, launched, sync, args.calls, args.gpu)
        if args.profile and any(name.startswith(p) for p in args.profile.split("|")):
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.calls):
                fn()
            prof.disable()
            sync()
            pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def _cupy_without_gpu(cuda_backend, cuda_cpp):
    """Set up ``--arrays cupy-nogpu``: ``(put, sync)`` for the real CuPy's arrays, no GPU.

    CuPy's allocator hands out unowned pointers (never dereferenced: every launch is a stub,
    installed here before any call compiles); the current device is taken as 0 and CUDA as
    available. ``__cuda_array_interface__`` is exported as version 2 (set before CuPy is
    imported): version 3 names the current stream, which needs the driver.
    """
    if "cupy" in sys.modules:
        sys.exit("--arrays cupy-nogpu sets CuPy up before it is imported")
    os.environ["CUPY_CUDA_ARRAY_INTERFACE_EXPORT_VERSION"] = "2"
    import cupy
    from cupy.cuda import memory

    if cuda_backend.simulated():
        sys.exit("--arrays cupy-nogpu needs the simulator off (NUMBA_ENABLE_CUDASIM=0)")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 (no driver or no device: as this mode expects)
        pass
    else:
        sys.exit("a GPU is present: use --gpu")
    nxt = [1 << 40]  # (addresses no process has: the launches never reach a device)

    def allocate(size):
        ptr = nxt[0]
        nxt[0] += -(-max(size, 1) // 512) * 512
        return memory.MemoryPointer(memory.UnownedMemory(ptr, max(size, 1), None,
                                                         device_id=0), 0)

    cupy.cuda.set_allocator(allocate)
    cupy.cuda.runtime.getDevice = lambda: 0  # (stencilkit looks it up by this name)
    cuda_backend._probe = lambda: (True, "real CuPy arrays, no GPU (host_time)")
    cuda_cpp.available = lambda: (True, "real CuPy arrays, no GPU (host_time)")
    from stencilkit.backends import cuda_replay

    def stub(grid, block, args):
        pass

    def kernels(mod, fastmath):
        cuda_replay.spoil()  # (as the real one: a launch follows)
        return {name: stub for name in mod.kernels}

    cuda_cpp.kernels = kernels
    function = cupy.cuda.function.Function
    cuda_cpp.packer = lambda found: cuda_cpp._packer(function)  # (as CuPy's kernels pack)

    def put(host):
        return cupy.empty(host.shape, host.dtype)  # (its values are never read)

    return put, lambda: None


CTYPES = {np.int32: "int", np.int64: "long long", np.uint8: "unsigned char",
          np.float32: "float", np.float64: "double", int: "long long"}
"""The C type of each scalar type's parameter (CuPy passes a Python int as 64 bits)."""


def probe_source(types) -> str:
    """An empty kernel ``probe`` of two byte arrays and one parameter of each of ``types``."""
    params = ["const unsigned char* a", "unsigned char* b"]
    params += [f"{CTYPES[t]} s{i}" for i, t in enumerate(types)]
    return f'extern "C" __global__ void probe({", ".join(params)}) {{}}\n'


MIXED = [np.int32(1)] * 7 + [np.int64(1), np.uint8(1), np.float64(1)]
"""Ten scalars of the types a generated stencil's launch passes."""


def _conversion(calls, rounds):
    """Print CuPy's conversion of a launch's arguments (real CuPy, no GPU), in microseconds.

    A ``cupy.cuda.function.Function`` never loaded (its address 0) is launched on a stand-in
    stream: CuPy converts each argument, then fails at CUDA's context (no driver or device).
    The least of ``rounds`` interleaved runs of ``calls`` launches each, by the arguments'
    types.
    """
    import timeit

    from cupy.cuda import function

    from stencilkit.backends import cuda_cpp

    class Stream:  # (CuPy's launch reads a stream's address; the current stream needs a GPU)
        ptr = 0

    fn, stream = function.Function.__new__(function.Function), Stream()

    def launch(args):
        try:
            fn((1,), (32,), args, stream=stream)
        except Exception as exc:  # noqa: BLE001
            return exc
        raise SystemExit("the launch went through: a GPU is present (use --gpu)")

    if not isinstance(launch((object(),)), TypeError):
        sys.exit("this CuPy does not convert the arguments before it needs a GPU")
    pack = cuda_cpp.packer({"probe": fn})
    sets = {t.__name__: [t(1)] * 10 for t in (np.int32, np.int64, np.uint8, np.float32,
                                              np.float64)}
    sets.update({"mixed (a stencil's)": MIXED, "Python int": [1] * 10, "none": []})
    if pack is not None:
        sets["mixed, packed once"] = list(cuda_cpp.packed(pack, MIXED))
    best = {}
    for _ in range(rounds):  # (interleaved: a noisy machine's least)
        for name, scalars in sets.items():
            kargs = tuple(scalars)
            per = timeit.timeit(lambda kargs=kargs: launch(kargs), number=calls) / calls
            best[name] = min(best.get(name, per), per)
    for name, per in best.items():
        print(f"conversion, scalars {name:<24} {per * 1e6:6.2f} us", flush=True)
    if pack is None:
        print("(no packer for this CuPy: its launches convert NumPy scalars each time)")


def _arguments(put, sync, calls):
    """Print microseconds per bare launch of an empty kernel, by its scalars' types."""
    import cupy

    from stencilkit.backends import cuda_cpp

    a, b = put(np.zeros(4, np.uint8)), put(np.zeros(4, np.uint8))
    sets = {t.__name__: [t(1)] * 10 for t in (np.int32, np.int64, np.uint8, np.float32,
                                              np.float64)}
    sets["mixed (a stencil's)"] = MIXED
    sets["Python int"] = [1] * 10
    sets["none (two arrays)"] = []
    for name, scalars in {**sets, "mixed, packed once": MIXED}.items():
        kernel = cupy.RawKernel(probe_source([type(v) for v in scalars]), "probe")
        if name.endswith("packed once"):
            scalars = cuda_cpp.packed(cuda_cpp.packer({"probe": kernel}), scalars)
        kargs = (a, b, *scalars)
        kernel((1,), (32,), kargs)
        sync()
        t = time.perf_counter()
        for _ in range(calls):
            kernel((1,), (32,), kargs)
        per = (time.perf_counter() - t) / calls * 1e6
        sync()
        print(f"launch, scalars {name:<24} {per:6.1f} us", flush=True)


class _Log(list):
    """Launches logged by :class:`_Recorded` while ``on``.

    Off, none are kept, so that the timed calls' arrays go back to CuPy's pool as without it.
    """

    on = False


class _Recorded:
    """A kernel that logs each launch (kernel, grid, block, args) before making it."""

    def __init__(self, kernel, log):
        self.kernel, self.log = kernel, log

    def __call__(self, grid, block, args):
        if self.log.on:
            self.log.append((self.kernel, grid, block, args))
        return self.kernel(grid, block, args)


def _breakdown(fn, launched, sync, calls, gpu):
    """Print a call's launches' host time alone, their GPU time, and its synchronised time."""
    launched.clear()
    launched.on = True
    fn()
    sync()
    launched.on = False
    launches = list(launched)
    launched.clear()
    t = time.perf_counter()
    for _ in range(calls):
        for kernel, grid, block, kargs in launches:
            kernel(grid, block, kargs)
    alone = (time.perf_counter() - t) / calls * 1e6
    sync()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
        sync()
    synced = (time.perf_counter() - t) / calls * 1e6
    line = f"{'':<4}{len(launches)} launch(es) alone {alone:6.1f} us"
    if gpu:
        import cupy

        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(calls):
            for kernel, grid, block, kargs in launches:
                kernel(grid, block, kargs)
        end.record()
        end.synchronize()
        line += f", on the GPU {cupy.cuda.get_elapsed_time(start, end) / calls * 1e3:6.1f} us"
    kinds = sorted({type(a).__name__ for _, _, _, kargs in launches for a in kargs})
    print(f"{line}; synchronised call {synced:6.1f} us; arguments: {', '.join(kinds)}",
          flush=True)


if __name__ == "__main__":
    main()
