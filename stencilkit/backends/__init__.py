"""Execution backends, and the one place where a call picks one.

A backend owns everything that runs on its kind of array. The rest of stencilkit plans a call
without knowing where it runs: :class:`stencilkit.Stencil` parses, validates and plans a kernel
call, the filters and resampling functions describe the passes they need
(:mod:`stencilkit._passes`), and :func:`select` hands either to the backend that the inputs and
``target=`` choose. Each backend module defines ``BACKEND``, an instance of a subclass of
:class:`Backend`:

- ``apply`` / ``iterate``: a Stencil call, ``steps`` calls feeding the result back;
- ``explain``: how such a call would run;
- ``run_passes``: a filter's :class:`stencilkit._passes.Passes` (box sums, separable weights,
  running extremes, selections), lowered to the backend's kernels; ``rank_kernel``: a small
  median or box extreme by a kernel of the backend's own, where it has one;
- ``block_reduce`` / ``decimate`` / ``pyramid_level``: resampling;
- ``zeros``, ``keeps``, ``to_host``, ``saturate``: arrays of the backend's kind.

Backends are registered by module name and imported on first use, so ``import stencilkit``
imports neither Dask nor numba.cuda. The first registered backend that claims a call runs it:
Dask (any Dask input), then CUDA (device input, or ``target="cuda"``), then the CPU backend
(NumPy, and anything ``numpy.asarray`` reads). Adding a backend means writing its module and
calling :func:`register`; nothing in the library above needs editing.
"""

from __future__ import annotations

import importlib
import threading
from typing import Callable, NamedTuple

import numpy as np


def is_dask_array(a) -> bool:
    """True for a dask.array.Array, checked without importing Dask."""
    return type(a).__module__.startswith("dask.array") and hasattr(a, "dask")


def is_device_array(a) -> bool:
    """True for CuPy arrays, numba device arrays and the CUDA simulator's device arrays.

    (The simulator's arrays lack ``__cuda_array_interface__``; they are recognised by their
    type's module, so that CI without a GPU runs the same dispatch.)
    """
    if hasattr(a, "__cuda_array_interface__"):
        return True
    mod = type(a).__module__
    return mod.startswith("numba.cuda") or mod.startswith("cupy")


class Backend:
    """The interface every backend implements (see the module docstring).

    Methods that a backend does not support raise :class:`NotImplementedError`; ``run_passes``
    has a default that every backend can run: the passes as generated stencils, through
    :meth:`stencilkit._passes.Passes.as_stencils` (which call the Stencil, so this backend's
    ``apply``).
    """

    name = "?"
    #: the kind of array, besides NumPy's, that this backend accepts for ``out=`` (for messages)
    array_kind = None
    #: its inputs, in messages ("output must be ... for host input")
    input_kind = "host"
    #: results are lazy (Dask): no ``out=``/``output=`` arrays
    lazy = False

    def keeps(self, a) -> bool:
        """Whether ``a`` (neither NumPy nor Dask) is taken as it is, not read as a NumPy array."""
        return False

    def to_host(self, a) -> np.ndarray:
        """A NumPy copy of one of this backend's arrays."""
        return np.asarray(a)

    def zeros(self, shape, dtype, like):
        """A zero-filled result of this backend's kind (``like``: an input)."""
        raise NotImplementedError

    def saturate(self, a, dtype, out=None):
        """``a`` in the integer ``dtype`` by the filters' rule, into ``out`` if given.

        Nearest integer (ties to even), saturated, NaN 0: :func:`stencilkit._dtypes.saturate`.
        This default works on NumPy arrays (others through :meth:`to_host`, coming back as
        NumPy); a backend with arrays of its own kind overrides it.
        """
        from .._dtypes import saturate

        res = saturate(np.asarray(self.to_host(a)), dtype)
        if out is None:
            return res
        np.copyto(out, res)
        return out

    # -- user kernels ----------------------------------------------------------------------------

    def apply(self, st, arrays, params, out, overrides):
        """Apply Stencil ``st`` once: arrays and scalar params as split by the Stencil."""
        raise NotImplementedError

    def iterate(self, st, arrays, params, out, overrides, steps, block_steps):
        """Apply ``st`` ``steps`` times, each result fed back as the first array."""
        raise NotImplementedError

    def explain(self, st, what, arrays, params, overrides) -> str:
        """One or more lines saying how :meth:`apply` would run (``what`` names the call)."""
        raise NotImplementedError

    # -- the library ---------------------------------------------------------------------------

    def run_passes(self, passes, arr, out):
        """A filter's passes over ``arr`` into ``out`` (or a new array of ``passes.out_dtype``)."""
        return passes.as_stencils(arr, out)

    def rank_kernel(self, passes, arr, out):
        """A small window's rank filter by a kernel of this backend's own, or None.

        ``passes``: one ``Rank`` pass of a window the generated sorting network takes, or the
        ``Extreme`` passes of a box small enough for one generated stencil (which runs them
        where this returns None, as it does by default).
        """
        return None

    def block_reduce(self, arr, full, op, edge, cval, out_dtype):
        """:func:`stencilkit.resample.block_reduce` after its checks (``full``: factor per axis)."""
        raise NotImplementedError

    def decimate(self, arr, full):
        """Every ``full[d]``-th element along each axis d."""
        raise NotImplementedError

    def pyramid_level(self, x, mode):
        """One fused pyramid level over the last two axes, or None for the generic route.

        (The generic route: the binomial prefilter as a generated stencil, then
        :meth:`decimate`.)
        """
        return None


class _Entry(NamedTuple):
    name: str
    module: str
    claims: Callable  # (arrays, target) -> bool, without importing the module
    holds: Callable | None  # a -> bool: one array of this backend's kind


_REGISTRY: list = []
_LOADED: dict = {}
_CHOSEN: dict = {}  # (the arrays' types, target) -> backend: select's answers
_LOCK = threading.Lock()


def register(name: str, module: str, claims, holds=None, *, first: bool = False) -> None:
    """Register a backend: the module ``module`` defines ``BACKEND``.

    ``claims(arrays, target)`` says, without importing the module, whether a call on these
    arrays with this ``target=`` runs there; it must depend only on the arrays' types and the
    target (:func:`select` remembers its answer per combination). ``holds(a)`` says whether
    one array is of its kind (so that other backends can copy it to the host). Backends are
    asked in registration order; ``first=True`` puts this one before the others. A name
    registered again replaces the entry.
    """
    entry = _Entry(name, module, claims, holds)
    with _LOCK:
        _REGISTRY[:] = [e for e in _REGISTRY if e.name != name]
        _LOADED.pop(name, None)
        _CHOSEN.clear()
        if first:
            _REGISTRY.insert(0, entry)
        else:
            _REGISTRY.append(entry)


def unregister(name: str) -> None:
    """Remove the backend registered as ``name`` (nothing if there is none)."""
    with _LOCK:
        _REGISTRY[:] = [e for e in _REGISTRY if e.name != name]
        _LOADED.pop(name, None)
        _CHOSEN.clear()


def names() -> tuple:
    """The registered backends' names, in the order they are asked."""
    return tuple(e.name for e in _REGISTRY)


def _load(entry) -> Backend:
    backend = _LOADED.get(entry.name)
    if backend is None:
        backend = importlib.import_module(entry.module).BACKEND
        _LOADED[entry.name] = backend
    return backend


def get(name: str) -> Backend:
    """The backend registered as ``name``."""
    for e in _REGISTRY:
        if e.name == name:
            return _load(e)
    raise KeyError(name)


def select(arrays, target=None) -> Backend:
    """The backend that runs a call on ``arrays`` with ``target=`` (None: by the input types)."""
    try:
        if len(arrays) == 1:
            key = (type(arrays[0]), target)
        else:
            key = (*map(type, arrays), target)
        return _CHOSEN[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable target: no memo
        key = None
    for e in _REGISTRY:
        if e.claims(arrays, target):
            backend = _load(e)
            if key is not None:
                _CHOSEN[key] = backend
            return backend
    raise LookupError(f"no backend claims these arrays (target={target!r})")  # pragma: no cover


def for_array(a) -> Backend:
    """The backend of one array (as a library function on it selects one)."""
    return select((a,), None)


def foreign(a) -> bool:
    """Whether ``a`` belongs to a backend other than NumPy's (a Dask or device array).

    Library functions keep such arrays as they are instead of reading them with
    ``numpy.asarray``.
    """
    return any(e.holds is not None and e.holds(a) for e in _REGISTRY)


def to_numpy(a) -> np.ndarray:
    """``a`` as a NumPy array: a copy to the host for another backend's array."""
    if isinstance(a, np.ndarray):
        return a
    for e in _REGISTRY:
        if e.holds is not None and e.holds(a):
            return _load(e).to_host(a)
    return np.asarray(a)


register("dask", "stencilkit.backends.dask",
         lambda arrays, target: any(is_dask_array(a) for a in arrays), is_dask_array)
register("cuda", "stencilkit.backends.cuda",
         lambda arrays, target: target == "cuda" or (
             target is None and any(is_device_array(a) for a in arrays)),
         is_device_array)
register("cpu", "stencilkit.backends.cpu", lambda arrays, target: True)
