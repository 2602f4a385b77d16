"""One batch of ``stencilkit run``: the jobs, the worker pools, the run loop and its summary.

Every input file is an independent task: read (strictly: a damaged file is an error naming it),
filter each 2-D plane (channels of RGB images and pages of multi-page TIFFs separately), write
to a temporary name and rename when complete; the manifest (``manifest.py``) records each
completed output, so a rerun skips exactly those.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fnmatch
import glob
import hashlib
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import StencilError, StencilTypeError
from .manifest import Manifest
from .operation import Operation
from .progress import Progress, seconds, si
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError

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
    from .. import io
    from ..backends import cuda as cuda_backend

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
    from ..io import stale_temporaries

    for leftover in stale_temporaries(outdir):  # from a run that was killed mid-write
        with contextlib.suppress(OSError):
            leftover.unlink()


def run(args, op: Operation, log=print) -> int:
    """Run the batch that ``args`` (from ``options.parse_run``) describes; the exit status.

    ``args.inputs``: files, folders or globs; ``args.output``: the folder; ``args.chunks``: None
    or (rows, cols); the other fields are the run options of ``options.RUN_OPTIONS``.
    """
    from .. import io

    inputs = args.inputs
    if not inputs:
        raise UsageError("no input files given (give files, folders or quoted globs after the "
                         "filter's name)")
    # outputs made from damaged inputs are complete only for runs that accept those
    operation = op.describe() + (" (damaged inputs accepted)" if args.accept_damaged else "")
    if args.gpu:
        from ..backends.cuda import cuda_available

        ok, why = cuda_available(explain=True)
        if not ok:
            raise UsageError(f"--gpu: {why}")
    chunks = args.chunks
    try:
        files, problems = io.expand_inputs(inputs)
    except io.ImageError as exc:
        raise UsageError(str(exc)) from None
    outdir = Path(args.output)
    names = _output_names(files, args.name)
    dtype = op.params.get("output")
    for suffix in sorted({Path(n).suffix.lower() for n in names}) if dtype is not None else ():
        try:  # every output would fail: say so once, now
            io.encode_image(np.zeros((2, 2), dtype), suffix, f"--dtype {dtype} with {suffix} names")
        except io.ImageError as exc:
            raise UsageError(str(exc)) from None
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
        from ..backends.cuda import simulated

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
        progress.close()
        manifest.close()
        if executor is not None:
            with _ignore_interrupts():
                executor.close()
    elapsed = time.perf_counter() - t0
    rate = stats["pixels"] / elapsed if elapsed > 0 else 0.0
    log(f"done: {stats['frames']} written, {already} already complete, {len(failures)} failed"
        + (f", {len(pending)} not started (interrupted)" if interrupted else "")
        + f"; {si(stats['pixels'], 'B')} of pixels in {seconds(elapsed)} ({si(rate, 'B/s')}"
        + (f", {stats['frames'] / elapsed:.1f} frames/s" if stats["frames"] else "")
        + f"); read {si(stats['read'], 'B')}, wrote {si(stats['written'], 'B')} to {outdir}")
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
