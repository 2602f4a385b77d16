"""CPU backend: NumPy arrays (and anything ``numpy.asarray`` reads) on all cores.

It loads generated modules through numba's on-disk cache (below), runs a planned Stencil call
(:class:`CpuBackend`: ``apply``, and ``iterate`` with temporal blocking over cache-sized tiles),
lowers the filters' passes to the CPU line kernels (:mod:`stencilkit.backends.cpu_lines`) and
runs resampling with the CPU block kernels (:mod:`stencilkit.backends.cpu_blocks`).

Loading: numba caches a compiled function next to its source file and finds it again from the file's
path, modification time and the function's qualified name. A generated kernel therefore gets a
real file: ``<cache dir>/sk_<hash>.py``, where the hash covers the generated text and the numba
and Python versions, and the module is registered in ``sys.modules`` under a name derived from
the same hash (numba's cache cannot reload functions of an unregistered module). A file is only
ever written once, atomically (temporary name, then ``os.replace``), so processes racing on a
cold cache write identical bytes and never see a partial file, and a second process loads the
compiled machine code instead of recompiling.

The cache directory is the first writable one of ``$STENCILKIT_CACHE_DIR``,
``$XDG_CACHE_HOME/stencilkit`` (``~/.cache/stencilkit``) and ``<tmp>/stencilkit-<user>``; if none
is writable (or writing the module fails, e.g. on a full disk), kernels compile in memory without
a disk cache.
"""

from __future__ import annotations

import concurrent.futures
import functools
import getpass
import hashlib
import importlib.util
import itertools
import math
import os
import sys
import tempfile
import threading
import types
from pathlib import Path

import numba
import numpy as np

from .. import _buffers, _dtypes, _narrow, _regions, _unroll, codegen, modes
from .._errors import StencilError, StencilTypeError
from . import Backend, to_numpy

# Below this many output elements one thread is as fast as two: thread start-up costs about as
# much as the work. Measured for the 3 x 3 int8 mean (us, serial / parallel): 64^2 10.9 / 11.0,
# 128^2 16.1 / 13.5, 256^2 30.5 / 20.4, 1024^2 210 / 112.
PARALLEL_THRESHOLD = 1 << 14

# numba's default threading layer (workqueue) aborts the process when two threads launch
# parallel kernels at once (numba issue 9288). One launch at a time runs in parallel; a thread
# that finds the lock taken runs the serial twin of the same kernel, which gives bit-identical
# results (no cross-element reductions), so concurrent callers are safe whatever the layer.
_PARALLEL_LOCK = threading.Lock()


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def cache_dir() -> Path | None:
    """The directory generated kernels and numba's cache live in, or None if none is writable."""
    candidates = []
    env = os.environ.get("STENCILKIT_CACHE_DIR")
    if env:
        candidates.append(Path(env))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates.append(Path(xdg) / "stencilkit")
    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    candidates.append(Path(tempfile.gettempdir()) / f"stencilkit-{user}")
    for path in candidates:
        if _writable(path):
            return path
    return None


def _tolerate_cache_write_errors() -> None:
    """Let a compiled function run when numba cannot write it to its on-disk cache.

    numba saves each compiled function to its cache and lets an OSError from that write (a
    full disk, a file-size limit, a folder turned read-only) escape from the call that
    compiled it, so a batch job on a nearly full disk would fail every kernel's first call
    (found by the CLI's write-fault test). The code is compiled by then and correct; only the
    cache entry is lost, and the next process compiles again. numba does the same for spurious
    Windows errors (``_guard_against_spurious_io_errors``); this extends it to these errno
    values, everywhere numba caches, once.
    """
    import errno

    from numba.core import caching

    save = caching.Cache.save_overload
    if getattr(save, "_stencilkit", False):
        return
    tolerated = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES,
                 errno.EPERM}

    def save_overload(self, sig, data):
        try:
            save(self, sig, data)
        except OSError as exc:
            if exc.errno not in tolerated:
                raise

    save_overload._stencilkit = True
    caching.Cache.save_overload = save_overload


_tolerate_cache_write_errors()

_MODULES: dict[str, types.ModuleType] = {}
_MODULES_LOCK = threading.Lock()


@functools.cache
def _imported_digest() -> str:
    """A hash of :mod:`stencilkit._casts`, whose jitted helpers every generated module calls.

    Part of a module's key: numba's disk cache checks the generated file alone, so a changed
    helper (a conversion's rule) would otherwise load the machine code compiled before it.
    """
    from .. import _casts

    return hashlib.sha256(Path(_casts.__file__).read_bytes()).hexdigest()


def load_module(source_for_cache, namespace: dict) -> types.ModuleType:
    """Return the module of generated source, compiled lazily, cached on disk when possible.

    ``source_for_cache(cache: bool) -> str`` produces the module text with numba's ``cache``
    option on or off; ``namespace`` holds the kernel's resolved globals.
    """
    directory = cache_dir()
    source = source_for_cache(directory is not None)
    key = hashlib.sha256(
        "\n".join([source, numba.__version__, sys.version, _imported_digest()]).encode()
    ).hexdigest()[:24]
    with _MODULES_LOCK:
        module = _MODULES.get(key)
        if module is not None:
            return module
        modname = f"_stencilkit_generated_{key}"
        if directory is not None:
            path = directory / f"sk_{key}.py"
            try:
                _write_once(path, source)
            except OSError:  # cache folder full or unwritable now: compile in memory
                directory = None
                source = source_for_cache(False)
        if directory is not None:
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
        else:
            module = types.ModuleType(modname)
            sys.modules[modname] = module
            exec(compile(source, f"<stencilkit {modname}>", "exec"), module.__dict__)
        module.__dict__.update(namespace)
        _MODULES[key] = module
        return module


def _write_once(path: Path, source) -> None:
    """Write ``source`` (text or bytes) to ``path`` whole, by a rename, unless it is there."""
    binary = isinstance(source, bytes)
    try:
        if (path.read_bytes() if binary else path.read_text()) == source:
            return
    except (OSError, UnicodeDecodeError):
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            f.write(source)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def run(module, arrays, out, params, mode, cval_acc, cval_out, acc_marker, parallel) -> None:
    """Run the compiled loop nest on ``(B, *core)`` arrays into ``out`` of the same shape.

    A kernel's exception raised in the parallel loop reaches Python as numba's SystemError
    ("returned a result with an exception set"); the serial twin then runs, and raises the
    kernel's own exception as it is (or, were it not raised again, computes the result).
    """
    if parallel and _PARALLEL_LOCK.acquire(blocking=False):
        try:
            module._sk_run_par(*arrays, out, mode, cval_acc, cval_out, acc_marker, *params)
            return
        except SystemError:
            pass
        finally:
            _PARALLEL_LOCK.release()
    module._sk_run_ser(*arrays, out, mode, cval_acc, cval_out, acc_marker, *params)


# -- the backend -------------------------------------------------------------------------------

def module(st, fastmath: bool, debug: bool, narrow: tuple = ()):
    """Stencil ``st``'s generated CPU module (compiled once per variant, cached on ``st``).

    ``narrow``: the integer variables held in 16 or 32 bits (:func:`narrowing`); a module
    with them serves only the calls they were decided for.
    """
    key = (bool(fastmath), bool(debug), narrow)
    mod = st._modules.get(key)
    if mod is None:
        opts = st.options
        gu = {
            "mode": modes.mode_code(opts["mode"], st._where),
            "cval": 0 if opts["cval"] is None else opts["cval"],
            "acc": opts["acc"],
        }
        header = f"# globals: {sorted(st._spec.global_keys.items())!r}\n"
        spec = cpu_spec(st)
        mod = load_module(
            lambda cache: header + codegen.generate(
                spec, fastmath=key[0], debug=key[1], cache=cache, gufunc=gu, narrow=narrow,
                inline_large=st._cpu_rewrites
            ),
            st._spec.globals,
        )
        st._modules[key] = mod
    return mod


def cpu_spec(st):
    """The kernel as the CPU compiles it: its loops over constant ranges unrolled.

    (:mod:`stencilkit._unroll`: the same operations in the same order.)
    """
    spec = st._modules.get("cpu-spec")
    if spec is None:
        spec = st._modules.setdefault("cpu-spec", _unroll.unrolled(st._spec, st._neighborhood))
    return spec


def narrowing(st, plan, params) -> tuple:
    """The variables a call's module holds narrow (:func:`stencilkit._narrow.decide`).

    Decided once per stencil, dtypes, cval and parameter types (typing the body: about 10 ms).
    """
    if plan.acc0.dtype != np.int64 or not st._cpu_rewrites:
        return ()
    cval = plan.cval_acc if plan.mode == modes.CONSTANT else None  # (the reads' cval)
    # (a Python int's numba type is int64, or uint64 from 2**63: part of the key)
    key = (plan.work_dtypes, None if cval is None else int(cval),
           tuple((int, p >= 1 << 63) if type(p) is int else type(p) for p in params))
    decided = st._modules.setdefault("cpu-narrowing", {})
    found = decided.get(key)
    if found is None:
        spec = cpu_spec(st)
        found = _narrow.decide(spec, plan.acc0.dtype, dict(zip(spec.arrays, plan.work_dtypes)),
                               cval, tuple(numba.typeof(p) for p in params))
        _dtypes.remember(decided, key, found, 257)
    return found


def work(a, plan, k, dtype):
    """An input as the C-contiguous ``(B, *core)`` array of ``dtype`` compiled code expects."""
    if plan.moved:
        a = np.moveaxis(a, plan.axes, range(-k, 0))
    if a.dtype != dtype:
        a = a.astype(dtype)
    # Compiled code indexes flat C-contiguous memory (see codegen); other layouts are copied
    # once, which is cheap next to strided access in every read.
    return np.ascontiguousarray(a).reshape(plan.wshape)


def work_view(out, plan):
    """``out`` as a ``(B, *core)`` view, or None if that needs a copy or a byte swap."""
    if not out.dtype.isnative:
        return None
    if plan.moved:
        out = np.moveaxis(out, plan.axes, range(-len(plan.core), 0))
    if not out.flags.c_contiguous:
        return None
    return out.reshape(plan.wshape)


def from_work(dest, plan):
    """The ``(B, *core)`` result with the caller's shape and axis order (a view)."""
    res = dest.reshape(plan.batch + plan.core)
    if plan.moved:
        res = np.moveaxis(res, range(-len(plan.core), 0), plan.axes)
    return res


def parallel(plan) -> bool:
    """Whether a planned call runs on threads (``parallel=None``: by its size)."""
    if plan.parallel is None:
        return plan.size >= PARALLEL_THRESHOLD
    return plan.parallel


def _tiles(n: int, size: int) -> tuple:
    return (size,) * (n // size) + ((n % size,) if n % size else ())


class CpuBackend(Backend):
    """NumPy arrays: numba-compiled loop nests, parallel over the outer axis."""

    name = "cpu"

    # Temporal blocking on NumPy: tiles of about this many bytes (724^2 float32; each thread's
    # two scratch buffers, halo included, stay in its L2 and the shared L3). Heat 8000^2
    # float32, 16 steps, ms/step over two runs of `benchmarks/iterate.py --tile-bytes ...`:
    # 512 KiB 14.4/16.7, 1 MiB 12.2/14.5, 2 MiB 10.9/11.9, 4 MiB 12.9/11.7.
    TILE_BYTES = 1 << 21
    TILE_MIN_BYTES = 1 << 24  # below this the state stays in cache anyway: step by step
    TILE_MAX_STEPS = 16

    def to_host(self, a):
        return np.asarray(a)

    def zeros(self, shape, dtype, like):
        return np.zeros(shape, dtype)

    def saturate(self, a, dtype, out=None):
        from .cpu_lines.generic import saturate

        res = saturate(a, dtype, out)
        return super().saturate(a, dtype, out) if res is None else res

    # -- user kernels ----------------------------------------------------------------------------

    def prepare(self, st, arrays, params, out, overrides):
        """Plan a call: ``(plan, the inputs as C-contiguous (B, *core) arrays)``."""
        host = st._check_arrays(arrays, params, out, self)
        plan = st._plan(host, out, overrides)
        if out is not None and not out.flags.writeable:
            raise StencilError(f"{st._where}: out is read-only; pass a writeable array")
        work_ = [work(a, plan, st.ndim, wd) for a, wd in zip(host, plan.work_dtypes)]
        return plan, work_

    def apply(self, st, arrays, params, out, overrides):
        plan, work_ = self.prepare(st, arrays, params, out, overrides)
        # Write straight into out= when it can be viewed as (B, *core) in native byte order and
        # does not overlap an input; otherwise compute aside and copy (in-place use is allowed).
        dest = None
        if out is not None and plan.wout == plan.out_dtype:
            dest = work_view(out, plan)
            if dest is not None and any(np.may_share_memory(dest, w) for w in work_):
                dest = None
        direct = dest is not None
        if not direct:
            dest = _buffers.POOL.empty(plan.wshape, plan.wout)
        if dest.size:
            mod = module(st, *plan.variant, narrowing(st, plan, params))
            run(mod, work_, dest, params, plan.mode, plan.cval_acc,
                plan.cval_out, plan.acc0, parallel(plan))
        if out is None:
            result = from_work(dest, plan)
            return result if plan.wout == plan.out_dtype else result.astype(plan.out_dtype)
        if not direct:
            np.copyto(out, from_work(dest, plan), casting="unsafe")
        return out

    def iterate(self, st, arrays, params, out, overrides, steps, block_steps):
        plan, work_ = self.prepare(st, arrays, params, out, overrides)
        first = to_numpy(arrays[0])
        if plan.out_dtype != first.dtype.newbyteorder("="):
            raise StencilError(
                f"{st._where}: iterate feeds each result back as {st._spec.arrays[0]!r}, so "
                f"the output dtype ({plan.out_dtype}) must equal that array's dtype "
                f"({first.dtype})"
            )
        if plan.wout != plan.out_dtype:  # float16 state: each step must round to float16
            state = np.array(first, copy=True)
            for _ in range(steps):
                state = self.apply(st, [state, *arrays[1:]], params, None, overrides)
        else:
            if block_steps is None:
                block_steps = self._auto_tile_steps(st, plan, steps)
            if steps and work_[0].size and block_steps > 1:
                cur = self._iterate_tiled(st, plan, work_[0], work_[1:], params, steps,
                                          block_steps)
            else:
                cur = _buffers.POOL.empty(plan.wshape, plan.wout)
                np.copyto(cur, work_[0])
                if steps and cur.size:
                    nxt = _buffers.POOL.empty(plan.wshape, plan.wout)
                    mod = module(st, *plan.variant, narrowing(st, plan, params))
                    for _ in range(steps):
                        run(mod, [cur, *work_[1:]], nxt, params, plan.mode, plan.cval_acc,
                            plan.cval_out, plan.acc0, parallel(plan))
                        cur, nxt = nxt, cur
            state = from_work(cur, plan)
        if out is not None:
            np.copyto(out, state)
            return out
        return state

    def explain(self, st, what, arrays, params, overrides):
        plan = st._plan(st._check_arrays(arrays, params, None, self), None, overrides)
        how = "parallel threads" if parallel(plan) else "one thread"
        held = "".join(f"; {name} held in {kind} (its values fit)"
                       for name, kind in narrowing(st, plan, params))
        if cpu_spec(st) is not st._spec:
            held = "; loops over constant ranges unrolled" + held
        return (f"{what}: the CPU backend (numba), {how}; accumulator "
                f"{plan.acc0.dtype}, output {plan.out_dtype}{held}")

    def _tile_chunks(self, st, plan):
        k = st.ndim
        elements = max(1, self.TILE_BYTES // plan.wout.itemsize)
        side = max(8, int(round(elements ** (1.0 / k))))
        return [_tiles(n, min(side, n)) if n else (0,) for n in plan.core]

    def _auto_tile_steps(self, st, plan, steps):
        if steps < 2 or plan.wout.itemsize * math.prod(plan.wshape) < self.TILE_MIN_BYTES \
                or plan.variant[1]:
            return 1
        if not any(b or a for b, a in st.radius):
            return 1
        return _regions.auto_block_steps(st.radius, self._tile_chunks(st, plan), steps,
                                         cap=self.TILE_MAX_STEPS)

    def _iterate_tiled(self, st, plan, cur, fixed, params, steps, block_steps):
        """Advance ``cur`` by ``steps``, ``block_steps`` at a time per cache-sized tile.

        ``cur`` is only read (the first pass reads the caller's array itself, no copy); the
        passes write to buffers from the pool, a second one only when there is a second pass.

        Each pass gives every tile a region with a halo ``radius * block_steps`` deep (laid
        out as in :mod:`stencilkit._regions`, so every mode stays exact at the edges), advances
        it ``block_steps`` times in cache, and writes its centre to the other buffer. Tiles run
        on a thread pool (the compiled kernels release the GIL; one thread when the call is
        serial, as inside a Dask task), each thread in two scratch
        buffers of its own: fresh memory for every tile cost more in page faults (0.6 ms per
        1 MiB tile) than the 16 steps it computed.
        """
        chunks = self._tile_chunks(st, plan)
        bounds = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
        B = plan.wshape[0]
        mod = module(st, *plan.variant, narrowing(st, plan, params))
        largest = math.prod(max(c) + 2 * max(r) * block_steps
                            for c, r in zip(chunks, st.radius))
        local = threading.local()

        def selector(index, wrap):
            return index if wrap else slice(int(index[0]), int(index[-1]) + 1)

        wrap = plan.mode == modes.WRAP
        workers = numba.get_num_threads() if parallel(plan) else 1
        spare, owned = None, False
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            remaining = steps
            while remaining:
                nxt = spare if spare is not None else _buffers.POOL.empty(plan.wshape, plan.wout)
                t = min(block_steps, remaining)
                per_axis = [
                    list(enumerate(_regions.axis_regions(c, n, b * t, a * t, plan.mode)))
                    for c, n, (b, a) in zip(chunks, plan.core, st.radius)
                ]

                def one_tile(task, src=cur, dst=nxt, t=t):
                    bi, *regs = task
                    sel = [selector(index, wrap) for _, (index, _) in regs]
                    if wrap:
                        sel = list(np.ix_(*sel))
                    region = src[bi][tuple(sel)]
                    if not hasattr(local, "buffers"):
                        local.buffers = [np.empty(largest, plan.wout) for _ in range(2)]
                    size = region.size
                    a, b = (buf[:size].reshape((1,) + region.shape) for buf in local.buffers)
                    np.copyto(a[0], region)
                    others = [np.ascontiguousarray(f[bi][tuple(sel)])[None] for f in fixed]
                    for _ in range(t):
                        run(mod, [a, *others], b, params, plan.mode, plan.cval_acc,
                            plan.cval_out, plan.acc0, False)
                        a, b = b, a
                    centre = tuple(c for _, (_, c) in regs)
                    target = tuple(slice(bd[j], bd[j + 1]) for bd, (j, _) in zip(bounds, regs))
                    dst[bi][target] = a[0][centre]

                tasks = itertools.product(range(B), *per_axis)
                for _ in pool.map(one_tile, tasks):
                    pass
                spare = cur if owned else None
                cur, owned = nxt, True
                remaining -= t
        return cur

    def gufunc(self, st):
        """Stencil ``st`` as a generalized ufunc (see ``Stencil.gufunc``)."""
        return StencilGUFunc(st)

    # -- the library ---------------------------------------------------------------------------

    def run_passes(self, passes, arr, out):
        from .cpu_lines.program import run

        return run(passes, arr, out)

    def block_reduce(self, arr, full, op, edge, cval, out_dtype):
        from . import cpu_blocks

        if op == "median":
            return cpu_blocks.median(arr, full, edge, cval, out_dtype)
        return cpu_blocks.reduce(arr, full, op, edge, cval, out_dtype)

    def decimate(self, arr, full):
        return np.ascontiguousarray(arr[tuple(slice(None, None, f) for f in full)])

    def pyramid_level(self, x, mode):
        from . import cpu_blocks

        return cpu_blocks.pyramid_level(x, mode)


class StencilGUFunc:
    """A Stencil as a generalized ufunc, one numba gufunc per input dtype, compiled on demand.

    Compiling every dtype eagerly costs a few seconds per dtype, so loops are built when a dtype
    is first seen (and then come from numba's on-disk cache).
    """

    def __init__(self, st):
        self._stencil = st
        self._loops = {}
        self._lock = threading.Lock()
        self.signature = st.signature
        self.nin = len(st.arrays) + len(st.params)
        self.nout = 1

    def __repr__(self):
        return f"<stencilkit gufunc {self._stencil.__name__}{self.signature}>"

    def for_dtype(self, dtype):
        """Numba's gufunc for inputs of ``dtype`` (compiled on first request)."""
        dtype = np.dtype(dtype)
        with self._lock:
            loop = self._loops.get(dtype)
            if loop is None:
                if dtype.name not in _GUFUNC_DTYPES:
                    raise StencilTypeError(
                        f"{self._stencil._where}: the gufunc has loops for "
                        f"{', '.join(_GUFUNC_DTYPES)}; got {dtype}. Call the stencil itself, "
                        "which takes every numeric dtype"
                    )
                st = self._stencil
                arr = numba.types.Array(numba.from_dtype(dtype), st.ndim, "A")
                sig = (*[arr] * len(st.arrays), *[numba.float64] * len(st.params), arr)
                mod = module(st, st.options["fastmath"], False)
                loop = numba.guvectorize([sig], self.signature,
                                         cache=cache_dir() is not None)(mod._sk_gufunc)
                self._loops[dtype] = loop
            return loop

    def __call__(self, *args, **kwargs):
        """Apply the gufunc; the first argument's dtype selects the loop."""
        first = args[0]
        dtype = getattr(first, "dtype", None) or np.asarray(first).dtype
        return self.for_dtype(dtype)(*args, **kwargs)


_GUFUNC_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                  "uint64", "float32", "float64")

BACKEND = CpuBackend()
