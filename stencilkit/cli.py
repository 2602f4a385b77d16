"""The ``stencilkit`` command: batch filtering of image files, safe to interrupt and resume.

    stencilkit run uniform_filter 'frames/*.png' -o out --size 5
    stencilkit run gaussian_filter scans/ -o smooth --sigma 1.5 --mode nearest --name '{stem}.tif'
    stencilkit run block_reduce 'tiles/**/*.tif' -o half --factor 2 --func mean
    stencilkit run --kernel my_kernels.py:sharpen 'in/*.png' -o out --scheduler local --workers 4
    stencilkit demo | stencilkit bench [--plot bench.png] | stencilkit info

Every input file is an independent task: read (strictly: a damaged file is an error naming it),
filter each 2-D plane (channels of RGB images and pages of multi-page TIFFs separately), write
to a temporary name and rename when complete. A manifest in the output folder
(``.stencilkit-manifest.jsonl``) records, per output, the input's and the output's SHA-256 and
the operation; a rerun skips exactly the outputs that are recorded, unchanged and made from the
same input with the same operation and stencilkit version, and redoes the rest, so a batch
killed at any moment (Ctrl-C, SIGTERM, kill -9, a lost node) finishes with the same bytes as an
uninterrupted run.

Exit status: 0 every input done (or already done); 1 some inputs failed (each named, with the
reason, in the summary); 2 usage error (unknown filter or option, bad value, no input matches,
output folder not writable, two inputs with the same output); 130 interrupted (SIGINT or
SIGTERM; finished outputs are kept, a rerun completes the batch).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import contextlib
import fnmatch
import glob
import hashlib
import inspect
import json
import os
import signal
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._errors import StencilError, StencilTypeError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MANIFEST = ".stencilkit-manifest.jsonl"

FILTERS = ("uniform_filter", "gaussian_filter", "laplace", "sobel", "prewitt", "minimum_filter",
           "maximum_filter", "median_filter", "correlate", "convolve")
RESAMPLING = ("decimate", "block_reduce", "pyramid_down")
# parameters the command sets itself: the planes are 2-D, the output is a file
_RESERVED = {"input", "a", "output", "axes", "out"}


class UsageError(Exception):
    """A problem with the command line itself (exit status 2)."""


# ------------------------------------------------------------------------------- operations

def _parse_value(text: str):
    """Convert a command-line value.

    A Python literal (3, 1.5, (3, 5), [[0, 1], [1, 0]], 'x'), a comma list (3,5 or
    wrap,nearest), true/false/none, or else the text itself.
    """
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    if "," in text:
        return tuple(_parse_value(part) for part in text.split(",") if part.strip())
    return text


@dataclass
class Operation:
    """What runs on each 2-D plane: a library function with parameters, or a user's kernel."""

    name: str
    params: dict = field(default_factory=dict)
    kernel: object = None  # a Stencil, for --kernel
    kernel_ref: str = ""

    def describe(self) -> str:
        """Stable text of the operation, for the manifest (changes mean: redo)."""
        import stencilkit

        if self.kernel is not None:
            what = f"kernel {self.kernel_ref} {self.kernel._source!r} {self.kernel.options!r}"
        else:
            what = f"{self.name} " + json.dumps(self.params, sort_keys=True, default=repr)
        return f"stencilkit {stencilkit.__version__}: {what}"

    def function(self):
        """The callable: the user's Stencil or the library function."""
        if self.kernel is not None:
            return self.kernel
        from . import filters, resample

        module = filters if self.name in FILTERS else resample
        return getattr(module, self.name)

    def __call__(self, plane):
        """Apply to one 2-D plane (pyramid_down: its smallest level)."""
        fn = self.function()
        result = fn(plane, **self.params)
        if self.name == "pyramid_down":
            result = result[-1]  # the smallest level
        return result


def _load_kernel(ref: str):
    """The Stencil named by ``path/to/file.py:name``."""
    import importlib.util

    from ._stencil import Stencil

    path, sep, name = ref.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"--kernel {ref!r}: give it as path/to/file.py:name")
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--kernel {ref!r}: no such file {path}")
    spec = importlib.util.spec_from_file_location(f"_stencilkit_user_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"--kernel {ref!r}: importing {path} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    obj = getattr(module, name, None)
    if obj is None:
        raise UsageError(f"--kernel {ref!r}: {path} has no {name!r}")
    if not isinstance(obj, Stencil):
        raise UsageError(f"--kernel {ref!r}: {name!r} is a {type(obj).__name__}, not a stencil; "
                         "decorate it with @stencilkit.stencil")
    if len(obj.arrays) != 1 or obj.params:
        raise UsageError(f"--kernel {ref!r}: the command applies kernels of one array and no "
                         f"scalar parameters; {name!r} takes {', '.join(obj.arrays + obj.params)}"
                         )
    return obj


def build_operation(op_name, kernel_ref, extra) -> Operation:
    """The Operation for the command line, with its options checked against the function."""
    if kernel_ref:
        if extra:
            raise UsageError(f"options {' '.join(extra)} do not apply to --kernel (a kernel "
                             "carries its own mode and dtypes in its decorator)")
        kernel = _load_kernel(kernel_ref)
        op = Operation(name=kernel.__name__, kernel=kernel, kernel_ref=kernel_ref)
        _probe(op)
        return op
    if op_name not in FILTERS + RESAMPLING:
        raise UsageError(f"unknown filter {op_name!r}; choose one of "
                         f"{', '.join(FILTERS + RESAMPLING)}, or --kernel FILE.py:NAME")
    op = Operation(name=op_name)
    allowed = [p for p in inspect.signature(op.function()).parameters
               if p not in _RESERVED and p not in ("input", "a")]
    params = {}
    i = 0
    while i < len(extra):
        item = extra[i]
        if not item.startswith("--"):
            raise UsageError(f"unexpected argument {item!r} after the options; put the input "
                             "files before the filter's options")
        key, eq, value = item[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 >= len(extra):
                raise UsageError(f"option --{key} needs a value")
            value = extra[i + 1]
            i += 1
        i += 1
        if key not in allowed:
            raise UsageError(f"{op_name} has no option --{key}; its options are "
                             f"{', '.join('--' + a for a in allowed)}")
        params[key] = _parse_value(value)
    op.params = params
    _probe(op)
    return op


def _probe(op: Operation) -> None:
    """Run the operation on a tiny image, so that a bad option fails now, once, not per file."""
    plane = np.zeros((16, 16), np.uint8)
    try:
        op(plane)
    except (StencilError, StencilTypeError, TypeError, ValueError) as exc:
        raise UsageError(str(exc) if op.name in str(exc) else f"{op.name}: {exc}") from None


# -------------------------------------------------------------------------------- one file

@dataclass
class Job:
    """One input file and its output."""

    index: int
    src: str
    dst: str


@dataclass
class Result:
    """What happened to one Job."""

    index: int
    ok: bool
    reason: str = ""
    pixels_bytes: int = 0
    read_bytes: int = 0
    written_bytes: int = 0
    input_sha256: str = ""
    output_sha256: str = ""
    seconds: float = 0.0


def _planes(img: np.ndarray, pages: bool):
    """The image as (planes, rows, cols) and a function putting results back in its layout.

    Axes: (rows, cols), (rows, cols, channels), (pages, rows, cols), (pages, rows, cols,
    channels); every (page, channel) plane is filtered on its own.
    """
    lead = 1 if pages else 0
    channels = img.ndim == lead + 3
    moved = np.moveaxis(img, -1, lead) if channels else img
    lead_shape = moved.shape[:-2]
    flat = moved.reshape((-1,) + moved.shape[-2:])

    def restore(results):
        out = np.stack(results).reshape(lead_shape + results[0].shape)
        return np.moveaxis(out, lead, -1) if channels else out

    return flat, restore


def _on_device(plane):
    try:
        import cupy

        return cupy.asarray(plane)
    except ImportError:
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(plane))


def process(job: Job, op: Operation, gpu: bool = False, chunks=None,
            max_pixels: int | None = None, accept_damaged: bool = False) -> Result:
    """Read, filter and write one file; every failure becomes a Result naming the file."""
    from . import io
    from .backends import cuda as cuda_backend

    t0 = time.perf_counter()
    res = Result(index=job.index, ok=False)
    src, dst = Path(job.src), Path(job.dst)
    try:
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise io.ImageError(f"{src}: cannot read ({exc.strerror or exc})") from None
        res.read_bytes = len(data)
        res.input_sha256 = hashlib.sha256(data).hexdigest()
        img = io.read_image(src, max_pixels or io.MAX_PIXELS, data=data,
                            accept_damaged=accept_damaged)
        res.pixels_bytes = img.nbytes
        pages = src.suffix.lower() in (".tif", ".tiff") and io._tiff_pages(src, data) > 0
        planes, restore = _planes(img, pages)
        results = []
        for plane in planes:
            if gpu:
                out = op(_on_device(plane))
                out = cuda_backend.to_host(out) if cuda_backend.is_device_array(out) else out
            elif chunks:
                import dask.array as da

                out = op(da.from_array(plane, chunks=chunks))
                out = np.asarray(out.compute(scheduler="threads")
                                 if hasattr(out, "compute") else out)
            else:
                out = op(plane)
            results.append(np.asarray(out))
        result = restore(results)
        encoded = io.encode_image(result, dst.suffix, dst)
        try:
            io.atomic_write(dst, encoded)
        except OSError as exc:
            raise io.ImageError(f"{dst}: cannot write ({exc.strerror or exc}); nothing was left "
                                "at that path") from None
        res.written_bytes = len(encoded)
        res.output_sha256 = hashlib.sha256(encoded).hexdigest()
        res.ok = True
    except (StencilError, StencilTypeError) as exc:
        res.reason = str(exc)
    except MemoryError:
        res.reason = f"{src}: out of memory while processing it"
    except Exception as exc:  # a library's own error: still per file, still named
        res.reason = f"{src}: {type(exc).__name__}: {exc}"
    res.seconds = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------- the manifest

def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Manifest:
    """Completed outputs of earlier runs, appended one JSON line per output (fsynced)."""

    def __init__(self, outdir: Path):
        self.path = outdir / MANIFEST
        self.records = {}
        try:
            with open(self.path) as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.records[rec["output"]] = rec
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a kill: that output is redone
        except FileNotFoundError:
            pass
        self._file = None

    def complete(self, job: Job, operation: str) -> bool:
        """True when ``job``'s output exists as recorded, from this input and operation."""
        rec = self.records.get(Path(job.dst).name)
        dst = Path(job.dst)
        if rec is None or rec.get("operation") != operation or not dst.is_file():
            return False
        try:
            if dst.stat().st_size != rec.get("output_bytes"):
                return False
            return (_sha256_file(Path(job.src)) == rec.get("input_sha256")
                    and _sha256_file(dst) == rec.get("output_sha256"))
        except OSError:
            return False

    def add(self, job: Job, res: Result, operation: str) -> None:
        """Record a completed output (one line, flushed and fsynced)."""
        rec = {"output": Path(job.dst).name, "input": str(job.src),
               "input_sha256": res.input_sha256, "output_sha256": res.output_sha256,
               "output_bytes": res.written_bytes, "operation": operation}
        if self._file is None:
            self._file = open(self.path, "a")
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        """Close the manifest file."""
        if self._file is not None:
            self._file.close()
            self._file = None


# ------------------------------------------------------------------------------ executors

class _Executor:
    """One interface over thread and process pools and dask.distributed clients.

    ``submit(fn, *args)`` gives a future, ``as_completed(futures)`` yields them as they finish,
    ``cancel``, ``restart`` (a broken process pool), ``close``.
    """

    def __init__(self, scheduler: str, workers: int | None, log):
        self.kind = scheduler
        self.client = self.cluster = None
        workers = workers or os.cpu_count() or 1
        if scheduler == "threads":
            self.pool = cf.ThreadPoolExecutor(workers)
        elif scheduler == "processes":
            import multiprocessing

            # spawn: numba's thread pools must not be forked
            self._make_pool = lambda: cf.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"))
            self.pool = self._make_pool()
        else:
            try:
                from distributed import Client, LocalCluster
            except ImportError:
                raise UsageError(f"--scheduler {scheduler} needs dask.distributed: pip install "
                                 "'stencilkit[distributed]'") from None
            if scheduler == "local":
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=":0")
                self.client = Client(self.cluster)
                log(f"started a local dask cluster: {workers} workers, dashboard "
                    f"{self.client.dashboard_link}")
            else:
                try:
                    self.client = Client(scheduler, timeout="10s")
                except (OSError, TimeoutError) as exc:
                    raise UsageError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
                n = len(self.client.scheduler_info().get("workers", {}))
                log(f"connected to {scheduler}: {n} workers, dashboard "
                    f"{self.client.dashboard_link}")
            self.pool = None

    def submit(self, fn, *args):
        if self.client is not None:
            return self.client.submit(fn, *args, pure=False)
        return self.pool.submit(fn, *args)

    def as_completed(self, futures):
        if self.client is not None:
            from distributed import as_completed

            return as_completed(futures)
        return cf.as_completed(futures)

    def restart(self):
        """A new process pool after the old one broke (processes scheduler only)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._make_pool()

    def cancel(self, futures):
        if self.client is not None:
            self.client.cancel(list(futures))
        else:
            for f in futures:
                f.cancel()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()


# ------------------------------------------------------------------------------- progress

class Progress:
    """A bar with frames/s and MB/s on a terminal; plain lines (at most one a second) otherwise."""

    def __init__(self, total: int, stream=None, quiet: bool = False):
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self.done = self.failed = 0
        self.bytes = 0
        self.start = time.perf_counter()
        self.last = 0.0

    def line(self, text: str) -> None:
        """Print a message line (below the bar on a terminal)."""
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, res: Result) -> None:
        """Count a finished file and redraw (at most 10 times a second; logs once a second)."""
        self.done += 1
        self.failed += not res.ok
        self.bytes += res.pixels_bytes
        now = time.perf_counter()
        if self.quiet or (now - self.last < (0.1 if self.tty else 1.0) and self.done < self.total):
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = f"{self.done / elapsed:6.1f} frames/s {self.bytes / elapsed / 1e6:7.1f} MB/s"
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            eta = (self.total - self.done) * elapsed / self.done
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/"
                              f"{self.total} {rate} eta {eta:4.0f} s"
                              + (f" failed {self.failed}" if self.failed else ""))
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        else:
            self.line(f"[{self.done:>{len(str(self.total))}}/{self.total}] {rate}"
                      + (f", {self.failed} failed" if self.failed else ""))


# -------------------------------------------------------------------------------- the run

def _output_names(files, pattern: str | None):
    names = []
    for i, f in enumerate(files):
        if pattern is None:
            names.append(f.name)
            continue
        try:
            names.append(pattern.format(stem=f.stem, name=f.name, ext=f.suffix.lstrip("."),
                                        index=i))
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(f"--name {pattern!r}: {exc!r}; use {{stem}}, {{name}}, {{ext}} and "
                             "{index}") from None
    for n in names:
        if not n or "/" in n or os.sep in n or n.startswith("."):
            raise UsageError(f"--name gives the output name {n!r}: names must be plain file "
                             "names (no folders, not hidden)")
        if Path(n).suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            raise UsageError(f"output name {n!r}: the extension chooses the format; use .png, "
                             ".jpg or .tif")
    return names


def _prepare_outdir(outdir: Path):
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        import tempfile

        with tempfile.NamedTemporaryFile(dir=outdir, prefix=".stencilkit-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"output folder {outdir}: cannot create or write it "
                         f"({exc.strerror or exc})") from None
    from .io import stale_temporaries

    for leftover in stale_temporaries(outdir):  # from a run that was killed mid-write
        with contextlib.suppress(OSError):
            leftover.unlink()


def run(args, extra, log=print) -> int:
    """``stencilkit run``: returns the exit status."""
    from . import io

    if args.kernel:
        op_name, inputs = None, args.inputs
    else:
        if not args.inputs:
            raise UsageError("give a filter name (or --kernel FILE.py:NAME) and input files")
        op_name, inputs = args.inputs[0], args.inputs[1:]
    if not inputs:
        raise UsageError("no input files given")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: give a positive number")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise UsageError(f"--max-pixels {args.max_pixels}: give a positive number")
    op = build_operation(op_name, args.kernel, extra)
    # outputs made from damaged inputs are complete only for runs that accept those
    operation = op.describe() + (" (damaged inputs accepted)" if args.accept_damaged else "")
    if args.gpu:
        from .backends.cuda import cuda_available

        ok, why = cuda_available(explain=True)
        if not ok:
            raise UsageError(f"--gpu: {why}")
    chunks = None
    if args.chunks:
        chunks = _parse_value(args.chunks)
        if isinstance(chunks, int):
            chunks = (chunks, chunks)
        if not (isinstance(chunks, tuple) and len(chunks) == 2
                and all(isinstance(c, int) and c > 0 for c in chunks)):
            raise UsageError(f"--chunks {args.chunks!r}: give one or two positive ints (512 or "
                             "512,1024)")
    try:
        files, problems = io.expand_inputs(inputs)
    except io.ImageError as exc:
        raise UsageError(str(exc)) from None
    outdir = Path(args.output)
    names = _output_names(files, args.name)
    out_abs = outdir.resolve()
    clash = {}
    for f, n in zip(files, names):
        clash.setdefault(n, []).append(str(f))
        if f.resolve() == (out_abs / n):
            raise UsageError(f"output {outdir / n} would overwrite its input")
    for item in inputs:  # outputs that a rerun would read back as inputs
        text = str(item)
        among = (fnmatch.fnmatch(os.path.abspath(outdir / names[0]), os.path.abspath(text))
                 if glob.has_magic(text) else Path(text).is_dir() and Path(text).resolve()
                 == out_abs)
        if among:
            raise UsageError(f"outputs like {outdir / names[0]} would land among the inputs "
                             f"({text}), and a rerun would read them as inputs; choose another "
                             "output folder")
    dups = {n: fs for n, fs in clash.items() if len(fs) > 1}
    if dups:
        n, fs = next(iter(dups.items()))
        raise UsageError(f"{len(dups)} output name(s) would be written twice, e.g. {n} from "
                         f"{', '.join(fs)}; use --name with {{name}} or {{index}}")
    _prepare_outdir(outdir)

    manifest = Manifest(outdir)
    jobs = [Job(i, str(f), str(outdir / n)) for i, (f, n) in enumerate(zip(files, names))]
    todo, already = [], 0
    for job in jobs:
        if not args.overwrite and manifest.complete(job, operation):
            already += 1
        else:
            todo.append(job)
    failures = [(name, reason) for name, reason in problems]
    for name, reason in problems:
        log(f"FAILED {name}: {reason}")
    if already:
        log(f"{already} of {len(jobs)} outputs are already complete (manifest) and skipped "
            f"(--overwrite redoes them); {len(todo)} to do")

    progress = Progress(len(todo), quiet=args.quiet)
    t0 = time.perf_counter()
    stats = {"frames": 0, "pixels": 0, "read": 0, "written": 0}
    interrupted = False
    workers = args.workers
    if args.gpu and args.scheduler == "threads":
        from .backends.cuda import simulated

        if simulated():  # the simulator runs one kernel at a time
            workers = 1
    executor = _Executor(args.scheduler, workers, log) if todo else None
    pending = {}
    attempts = dict.fromkeys(range(len(jobs)), 0)
    stop = False
    try:
        queue = list(todo)
        while queue and not stop:
            for job in queue:
                attempts[job.index] += 1
                pending[executor.submit(process, job, op, args.gpu, chunks,
                                        args.max_pixels, args.accept_damaged)] = job
            queue = []
            for fut in executor.as_completed(list(pending)):
                job = pending.pop(fut)
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    # a worker process died (killed, out of memory, a crash in a library):
                    # every unfinished task of that pool fails with it; run them again in a
                    # new pool, and give up on a file only when it broke the pool twice
                    if attempts[job.index] < 2:
                        queue.append(job)
                        continue
                    res = Result(index=job.index, ok=False,
                                 reason=f"{job.src}: the worker process died twice while "
                                        "processing it (a crash or out of memory)")
                except Exception as exc:  # dask.distributed: KilledWorker after retries
                    res = Result(index=job.index, ok=False,
                                 reason=f"{job.src}: the worker processing it died "
                                        f"({type(exc).__name__}: {exc})")
                progress.update(res)
                if res.ok:
                    manifest.add(job, res, operation)
                    stats["frames"] += 1
                    stats["pixels"] += res.pixels_bytes
                    stats["read"] += res.read_bytes
                    stats["written"] += res.written_bytes
                else:
                    failures.append((job.src, res.reason))
                    progress.line(f"FAILED {res.reason}")
                    if args.strict:
                        progress.line("stopping at the first failure (--strict)")
                        executor.cancel(list(pending))
                        stop = True
                        break
            if queue and not stop:
                progress.line(f"a worker process died; running {len(queue)} unfinished "
                              "file(s) again in a new pool")
                executor.restart()
    except KeyboardInterrupt:
        interrupted = True
        progress.line("interrupted: finishing the files being written (each is complete or "
                      "absent); rerun the same command to finish the batch")
        if executor is not None:
            executor.cancel(list(pending))
    finally:
        manifest.close()
        if executor is not None:
            with _ignore_interrupts():
                executor.close()
    elapsed = time.perf_counter() - t0
    rate = stats["pixels"] / elapsed / 1e9 if elapsed > 0 else 0.0
    log(f"done: {stats['frames']} written, {already} already complete, {len(failures)} failed"
        + (f", {len(pending)} not started (interrupted)" if interrupted else "")
        + f"; {stats['pixels'] / 1e6:.1f} MB of pixels in {elapsed:.2f} s ({rate:.3f} GB/s); "
        f"read {stats['read'] / 1e6:.1f} MB, wrote {stats['written'] / 1e6:.1f} MB to {outdir}")
    if failures:
        log(f"{len(failures)} input(s) failed:")
        for name, reason in failures:
            log(f"  {name}: {reason}" if not reason.startswith(str(name)) else f"  {reason}")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failures else EXIT_OK


@contextlib.contextmanager
def _ignore_interrupts():
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals go elsewhere anyway
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _sigterm(signum, frame):
    raise KeyboardInterrupt


# --------------------------------------------------------------------- demo, bench, info

def demo(args, log=print) -> int:
    """``stencilkit demo``: the classic example, then a batch of PNG frames through ``run``."""
    import tempfile

    from . import demo as core_demo
    from . import io

    status = core_demo.main(["--frames", str(args.frames), "--size", str(args.size)])
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="stencilkit-demo-"))
    src = base / "frames"
    n, size = args.files, args.size
    log(f"\nbatch: {n} PNG frames of {size} x {size} uint8 in {src}, 3 x 3 mean through "
        "`stencilkit run`")
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    io.imwrite(frames, src, name="frame{index:04d}.png")
    cmd = ["run", "uniform_filter", str(src), "-o", str(base / "smoothed"), "--overwrite",
           "--size", "3"]
    log("$ stencilkit " + " ".join(cmd))
    t0 = time.perf_counter()
    rc = main(cmd)
    elapsed = time.perf_counter() - t0
    log(f"{n} frames in {elapsed:.2f} s: {n / elapsed:.1f} frames/s including PNG decode and "
        "encode")
    from . import filters

    check = io.read_image(base / "smoothed" / "frame0000.png")
    same = np.array_equal(check, filters.uniform_filter(frames[0], 3))
    log(f"first output equals filters.uniform_filter on the frame: {same}")
    if not args.dir:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return EXIT_OK if status == 0 and rc == 0 and same else EXIT_FAILED


def info(args, log=print) -> int:
    """``stencilkit info``: versions, threads, threading layer, CUDA, cache folder."""
    import importlib.metadata as md
    import platform

    import numba

    import stencilkit as sk

    from .backends import cpu
    from .backends.cuda import cuda_available

    log(f"stencilkit {sk.__version__} on Python {platform.python_version()} "
        f"({platform.system()} {platform.machine()})")
    for pkg in ("numpy", "numba", "llvmlite", "dask", "distributed", "scipy", "pillow",
                "tifffile", "zarr", "numba-cuda", "cupy-cuda12x", "opencv-python-headless"):
        try:
            log(f"  {pkg:<24} {md.version(pkg)}")
        except md.PackageNotFoundError:
            log(f"  {pkg:<24} not installed")

    @sk.stencil
    def _probe(x):
        return x[0, 0]

    _probe(np.zeros((256, 256), np.float32), parallel=True)  # starts numba's threads
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not started"
    log(f"threads: {numba.get_num_threads()} (numba), threading layer: {layer}, "
        f"CPU cores: {os.cpu_count()}")
    ok, why = cuda_available(explain=True)
    log(f"CUDA: {'available' if ok else 'not available'}: {why}")
    log(f"kernel cache: {cpu.cache_dir() or 'none writable (kernels compile in memory)'}")
    return EXIT_OK


def bench(args, log=print) -> int:
    """``stencilkit bench``: the side-by-side table of the 3 x 3 int8 mean."""
    from . import bench as bench_module

    return bench_module.main(["--sizes", *map(str, args.sizes)]
                             + (["--quick"] if args.quick else [])
                             + (["--plot", args.plot] if args.plot else []))


# ---------------------------------------------------------------------------- the parser

EPILOG = """exit status: 0 all done, 1 some inputs failed, 2 usage error, 130 interrupted"""


def parser() -> argparse.ArgumentParser:
    """The argument parser (``stencilkit --help``)."""
    p = argparse.ArgumentParser(
        prog="stencilkit", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run", help="filter image files into a folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Apply a filter, resampling function or your own @stencil kernel to every "
                    "input image and write one output per input.\n\nfilters: "
                    + ", ".join(FILTERS) + "\nresampling: " + ", ".join(RESAMPLING)
                    + "\n\nOptions after the inputs are the function's parameters, named as in "
                    "Python: --size 5, --sigma 1.5, --mode nearest, --cval 0, --origin 0, "
                    "--axis 0, --factor 2, --func median, --edge pad, --levels 2, "
                    "--footprint '[[0,1,0],[1,1,1],[0,1,0]]'.",
        epilog="examples:\n"
               "  stencilkit run uniform_filter 'frames/*.png' -o out --size 5\n"
               "  stencilkit run gaussian_filter scans/ -o smooth --sigma 2 --name '{stem}.tif'\n"
               "  stencilkit run --kernel k.py:sharpen in/ -o out --scheduler local\n\n" + EPILOG)
    r.add_argument("inputs", nargs="*", metavar="FILTER INPUT",
                   help="the filter's name, then files, folders or quoted globs ('**' allowed)")
    r.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output folder (created if needed)")
    r.add_argument("--kernel", metavar="FILE.py:NAME",
                   help="apply the @stencil kernel NAME defined in FILE.py instead of a filter")
    r.add_argument("--name", metavar="PATTERN",
                   help="output file name from {stem}, {name}, {ext}, {index}; the extension "
                        "chooses the format (default: the input's name and format)")
    r.add_argument("--scheduler", default="threads", metavar="S",
                   help="threads (default), processes, local (a dask.distributed LocalCluster; "
                        "prints its dashboard) or tcp://HOST:PORT (a running scheduler)")
    r.add_argument("--workers", type=int, metavar="N", help="parallel workers (default: cores)")
    r.add_argument("--gpu", action="store_true", help="filter on the CUDA GPU")
    r.add_argument("--chunks", metavar="R[,C]",
                   help="filter each image as a Dask array of these chunks (very large images)")
    resume = r.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", default=True,
                        help="skip outputs already complete (default)")
    resume.add_argument("--overwrite", action="store_true", help="redo every output")
    r.add_argument("--strict", action="store_true",
                   help="stop at the first failed input (default: report it and go on)")
    r.add_argument("--accept-damaged", action="store_true",
                   help="process readable but damaged files (a PNG/JPEG cut short: the missing "
                        "part black; TIFF reader warnings) instead of reporting them")
    r.add_argument("--max-pixels", type=int, metavar="N",
                   help="refuse images with more pixels than this (default 2**30)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    d = sub.add_parser("demo", help="generate a sample stack and run the classic pipeline")
    d.add_argument("--frames", type=int, default=200, help="frames of the in-memory demo")
    d.add_argument("--files", type=int, default=64, help="PNG files of the batch demo")
    d.add_argument("--size", type=int, default=1000, help="frame height and width")
    d.add_argument("--dir", help="where to put the sample files (default: a temporary folder)")
    b = sub.add_parser("bench", help="the side-by-side benchmark table (3 x 3 int8 mean)")
    b.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    b.add_argument("--quick", action="store_true")
    b.add_argument("--plot", metavar="OUT.png", help="also draw the table (needs matplotlib)")
    sub.add_parser("info", help="versions, threads, threading layer, CUDA")
    return p


def main(argv=None) -> int:
    """Entry point of the ``stencilkit`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    try:
        args, extra = p.parse_known_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if extra and args.command != "run":
        print(f"stencilkit: error: unrecognized arguments: {' '.join(extra)}", file=sys.stderr)
        return EXIT_USAGE
    old = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # not in the main thread: leave it
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.command == "run":
            return run(args, extra)
        if args.command == "demo":
            return demo(args)
        if args.command == "bench":
            return bench(args)
        return info(args)
    except UsageError as exc:
        print(f"stencilkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stencilkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())
