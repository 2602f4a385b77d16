"""The ``stencilkit`` command: batch filtering of image files, safe to interrupt and resume.

    stencilkit run uniform_filter --size 5 'frames/*.png' -o out
    stencilkit run gaussian_filter --sigma 1.5 --mode nearest scans/ -o smooth --name '{stem}.tif'
    stencilkit run block_reduce 'tiles/**/*.tif' -o half --factor 2 --func mean
    stencilkit run --kernel my_kernels.py:sharpen 'in/*.png' -o out --scheduler local --workers 4
    stencilkit run gaussian_filter --help
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

The pipeline of the package: ``options`` parses the command line (a parser per function,
generated from its signature and numpydoc), ``operation`` loads and tries what runs on each
plane, ``batch`` runs the files on a pool with ``manifest`` and ``progress``; ``commands`` holds
demo, info and bench.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

from .batch import Job, Result, process, run
from .manifest import MANIFEST, Manifest
from .operation import FILTERS, MORPHOLOGY, RESAMPLING, Operation
from .options import EPILOG, parse_run
from .progress import Progress
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "FILTERS", "Job",
           "MANIFEST", "MORPHOLOGY", "Manifest", "Operation", "Progress", "RESAMPLING", "Result",
           "UsageError", "main", "parser", "process", "run"]


def parser() -> argparse.ArgumentParser:
    """The parser of the commands (``stencilkit --help``); ``run`` has its own (``options``)."""
    p = argparse.ArgumentParser(
        prog="stencilkit", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", add_help=False,
                   help="filter image files into a folder (stencilkit run --help)")
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


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    """Entry point of the ``stencilkit`` command; returns the exit status."""
    from . import commands

    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        if argv[:1] != ["run"]:
            args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    old = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # not in the main thread: leave it
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args is None:
            try:
                run_args, op = parse_run(argv[1:])
            except SystemExit as exc:  # --help (0) or argparse's usage error (2)
                return int(exc.code or 0)
            return run(run_args, op)
        return {"demo": commands.demo, "bench": commands.bench,
                "info": commands.info}[args.command](args)
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
