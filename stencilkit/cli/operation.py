"""What ``stencilkit run`` applies to each 2-D plane.

A library function with its parameters, or a user's ``@stencil`` kernel loaded from a file;
either is tried on a small image first, so that a bad value is a usage error, not a failure per
file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import StencilError, StencilTypeError
from .status import UsageError

FILTERS = ("uniform_filter", "gaussian_filter", "laplace", "sobel", "prewitt", "minimum_filter",
           "maximum_filter", "median_filter", "rank_filter", "percentile_filter", "correlate",
           "convolve", "gaussian_laplace", "gaussian_gradient_magnitude", "generic_filter",
           "generic_filter1d", "generic_laplace", "generic_gradient_magnitude", "vectorized_filter")
MORPHOLOGY = ("grey_erosion", "grey_dilation", "grey_opening", "grey_closing",
              "morphological_gradient", "morphological_laplace", "white_tophat", "black_tophat",
              "binary_erosion", "binary_dilation", "binary_opening", "binary_closing",
              "binary_hit_or_miss", "binary_fill_holes")
RESAMPLING = ("decimate", "block_reduce", "pyramid_down")
FUNCTIONS = FILTERS + MORPHOLOGY + RESAMPLING


def module_of(name: str) -> str:
    """The stencilkit module whose function ``name`` is (one of FUNCTIONS)."""
    return "filters" if name in FILTERS else "morphology" if name in MORPHOLOGY else "resample"


def function(name: str):
    """The library function ``name`` (one of FUNCTIONS)."""
    import importlib

    return getattr(importlib.import_module(f"stencilkit.{module_of(name)}"), name)


def _json_default(value):
    """Exact JSON for parameter values that JSON has no type for (arrays in full, not repr)."""
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (np.dtype, type)):
        return str(np.dtype(value))
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


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
            what = f"{self.name} " + json.dumps(self.params, sort_keys=True,
                                                default=_json_default)
        return f"stencilkit {stencilkit.__version__}: {what}"

    def function(self):
        """The callable: the user's Stencil or the library function."""
        return self.kernel if self.kernel is not None else function(self.name)

    def __call__(self, plane):
        """Apply to one 2-D plane (pyramid_down: its smallest level)."""
        params = {k: v.load() if isinstance(v, FileFunction) else v
                  for k, v in self.params.items()}
        result = self.function()(plane, **params)
        if self.name == "pyramid_down":
            result = result[-1]  # the smallest level
        return result


def _load(ref: str, option: str):
    """The object named by ``path/to/file.py:name`` (the file imported as a module)."""
    import importlib.util

    path, sep, name = ref.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"{option} {ref!r}: give it as path/to/file.py:name")
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{option} {ref!r}: no such file {path}")
    spec = importlib.util.spec_from_file_location(f"_stencilkit_user_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"{option} {ref!r}: importing {path} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    obj = getattr(module, name, None)
    if obj is None:
        raise UsageError(f"{option} {ref!r}: {path} has no {name!r}")
    return obj


@dataclass(frozen=True)
class FileFunction:
    """A Python function given as ``path/to/file.py:name`` (``generic_filter --function``).

    Picklable by its reference: a worker process imports the file again. Its text (the
    manifest's record of the operation) holds a digest of the file, so outputs made by an
    edited function are redone.
    """

    ref: str
    digest: str
    option: str = "--function"

    @classmethod
    def of(cls, ref: str, option: str = "--function") -> FileFunction:
        """The function ``ref``, loaded and checked (a UsageError names what is wrong)."""
        import hashlib

        fn = _load(ref, option)
        if not callable(fn):
            raise UsageError(f"{option} {ref!r}: {ref.rpartition(':')[2]!r} is a "
                             f"{type(fn).__name__}, not a function")
        path = ref.rpartition(":")[0]
        made = cls(ref, hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16], option)
        _LOADED[made] = fn
        return made

    def load(self):
        """The function itself (imported once per process)."""
        fn = _LOADED.get(self)
        if fn is None:
            fn = _LOADED[self] = _load(self.ref, self.option)
        return fn

    def __repr__(self):
        return f"{self.ref} (sha256 {self.digest})"


_LOADED: dict = {}


def load_kernel(ref: str):
    """The Stencil named by ``path/to/file.py:name``."""
    from .._stencil import Stencil

    obj = _load(ref, "--kernel")
    name = ref.rpartition(":")[2]
    if not isinstance(obj, Stencil):
        raise UsageError(f"--kernel {ref!r}: {name!r} is a {type(obj).__name__}, not a stencil; "
                         "decorate it with @stencilkit.stencil")
    if len(obj.arrays) != 1 or obj.params:
        raise UsageError(f"--kernel {ref!r}: the command applies kernels of one array and no "
                         f"scalar parameters; {name!r} takes {', '.join(obj.arrays + obj.params)}"
                         )
    return obj


def kernel_operation(ref: str) -> Operation:
    """The Operation of ``--kernel FILE.py:NAME``, tried on a small image."""
    kernel = load_kernel(ref)
    return probe(Operation(name=kernel.__name__, kernel=kernel, kernel_ref=ref))


def probe(op: Operation, options: dict | None = None) -> Operation:
    """Run ``op`` on a tiny image, so that a bad value fails now, once, not once per file.

    ``options`` maps parameter names to their command-line spelling (``output`` -> ``--dtype``),
    so that the library's message, which names the parameter, is followed by the option.
    """
    plane = np.zeros((16, 16), np.uint8)
    try:
        op(plane)
    except (StencilError, StencilTypeError, TypeError, ValueError) as exc:
        text = str(exc) if op.name in str(exc) else f"{op.name}: {exc}"
        given = [f"{options[k]} {_spelled(v)}" for k, v in op.params.items()
                 if options and k in options and _mentions(text, k)]
        raise UsageError(text + (f" (from {', '.join(given)})" if given else "")) from None
    return op


def _mentions(text: str, name: str) -> bool:
    import re

    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def _spelled(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, np.ndarray):
        return "<array>" if value.size > 9 else json.dumps(value.tolist())
    if isinstance(value, np.dtype):
        return str(value)
    return str(value)
