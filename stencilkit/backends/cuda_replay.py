"""Device calls replayed: a call's host work on the GPU, worked out once per configuration.

A filter call on a device array takes tens of microseconds of Python before its kernels are
queued (``tools/host_time.py``): argument checks, the choice of route, the module's and the
launches' lookups. CUDA events around a single call count that time (the GPU waits for the
host), and on images of a few megabytes it is most of the call. So the public functions
(:func:`memoized`) keep, per configuration, a *replay*: a function of the call's input and
output arrays that redoes only the array work and the launches, every decision frozen.

How a replay is made. The first call of a configuration runs as always, recorded. A route
that launches kernels (:func:`stencilkit.backends.cuda_sweeps.run` and the others) takes a
token when it starts (:func:`enter`) and offers its replay when it has launched
(:func:`offer`); the offer covers whatever the route did inside. Device work outside an
offering route (a kernel's modules looked up for a launch, a numba.cuda launch, a cast, a copy
into ``out``) marks the recording spoiled (:func:`spoil`). The call keeps the replay only when
its whole device work was one offered route that took the call's own input and output
and returned the call's result.

What a replay is keyed on (:func:`memoized`): the function; the input's type, shape, strides
and dtype; the other arguments (by :func:`stencilkit._dtypes.exact_key`; small host arrays, a
correlation's weights, by their values: :func:`_arg_key`; a call with a list or another
array among them is not kept); the output's; the current device (kernels are compiled per
device) and the ``STENCILKIT_CUDA_CPP`` switch; and :data:`GENERATION`, which every
assignment to an attribute of a stencilkit module bumps (``cuda_sep.AHEAD = False``,
``monkeypatch.setattr``): a changed setting takes effect at the next call, as it did before.
A replay may decline (it returns None: a view whose address no longer suits the kernel's
32-bit words); the call then runs as the first did, and records again.

Kernel calls (a Stencil called on device arrays) keep theirs in
:meth:`stencilkit.backends.cuda.CudaBackend.apply`, keyed the same way but by the parameters'
types, whose values go to each launch; a step-by-step ``iterate`` relaunches its first step's
launches; each ``pyramid_down`` level keeps one in :func:`.cuda_blocks.pyramid_level`.
:data:`ENABLED` and :func:`off` turn all of them off.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import threading
import types

import numpy as np

from .. import _dtypes

REPLAYED = [0]
"""Calls answered by a replay so far (for tests and ``tools/host_time.py``)."""

WHOLE = [0]
"""Of those, public calls replayed whole (:func:`memoized`; the others: a stencil's or a
pyramid level's replay inside a call that ran its other steps in full)."""

GENERATION = [0]
"""Bumped by every assignment to an attribute of a stencilkit module (a setting changed)."""

MOST = 512
"""The replays kept (all functions together); the oldest go first."""

_local = threading.local()
_REPLAYS: dict = {}
_DEVICE_TYPES: dict = {}  # type -> whether its arrays are device arrays (memoized calls)


class _Watched(types.ModuleType):
    """A stencilkit module whose attribute assignments bump :data:`GENERATION`."""

    def __setattr__(self, name, value):
        GENERATION[0] += 1
        super().__setattr__(name, value)

    def __delattr__(self, name):
        GENERATION[0] += 1
        super().__delattr__(name)


def watch() -> None:
    """Make every imported stencilkit module a :class:`_Watched` one.

    Run before a replay is kept: its route read its settings from modules imported by then,
    so every setting a replay froze is watched from then on. (A sweep of ``sys.modules`` only
    where it changed: the count, or one of the watched names' modules.)
    """
    if len(sys.modules) == _SWEPT[0] and all(sys.modules.get(n) is m for n, m in
                                             _WATCHED.items()):
        return
    _WATCHED.clear()
    for name, mod in list(sys.modules.items()):
        if (name == "stencilkit" or name.startswith("stencilkit.")) and \
                isinstance(mod, types.ModuleType):
            if type(mod) is types.ModuleType:
                mod.__class__ = _Watched
            _WATCHED[name] = mod
    _SWEPT[0] = len(sys.modules)


_WATCHED: dict = {}  # name -> the module watch() made a _Watched one
_SWEPT = [0]  # len(sys.modules) at the last sweep


class _Recording:
    __slots__ = ("events",)

    def __init__(self):
        self.events = []  # ("spoil",) or ("offer", x, out, result, replay)


def enter():
    """A token for :func:`offer`, taken where a route starts (None when not recording)."""
    rec = getattr(_local, "rec", None)
    return None if rec is None else len(rec.events)


def offer(token, x, out, result, replay) -> None:
    """Offer ``replay`` for the route that took ``token`` (see the module docstring).

    ``x`` and ``out``: the arrays the route took; ``result``: what it returned;
    ``replay(x, out)``: the same work on arrays of the same configuration, returning the
    result, or None where it cannot (the call then runs in full). What the route did since
    ``token`` (inner routes' offers, spoils) is covered by this offer.
    """
    if token is None:
        return
    rec = _local.rec
    del rec.events[token:]
    rec.events.append(("offer", x, out, result, replay))


def spoil() -> None:
    """Mark the current recording as holding device work that no replay covers."""
    rec = getattr(_local, "rec", None)
    if rec is not None:
        rec.events.append(("spoil",))


def _record(fn, args, kwargs, x, out):
    """Run ``fn(*args, **kwargs)`` recorded: ``(result, replay or None)``."""
    watch()
    rec = _local.rec = _Recording()
    try:
        result = fn(*args, **kwargs)
    finally:
        _local.rec = None
    if len(rec.events) == 1 and rec.events[0][0] == "offer":
        _, rx, rout, rres, replay = rec.events[0]
        if rx is x and rout is out and rres is result:
            return result, replay
    return result, None


def is_device(a) -> bool:
    """Whether ``a`` is a device array (by its type, remembered)."""
    cls = type(a)
    found = _DEVICE_TYPES.get(cls)
    if found is None:
        from . import is_device_array

        found = _DEVICE_TYPES[cls] = cls is not np.ndarray and is_device_array(a)
    return found


def _device():
    """What a call's route depends on besides its arguments and settings.

    The current CUDA device (kernels are compiled per device; None without CuPy) and the
    ``STENCILKIT_CUDA_CPP`` switch (read at each call: ``0`` runs the numba.cuda kernels).
    """
    cupy = sys.modules.get("cupy")
    try:
        device = None if cupy is None else cupy.cuda.runtime.getDevice()
    except Exception:  # noqa: BLE001 (CuPy without a GPU: the simulator's arrays)
        device = None
    return device, os.environ.get("STENCILKIT_CUDA_CPP")


SMALL = 4096
"""Host arrays among a call's arguments (weights, footprints) of at most this many elements
count in its key by their values; a larger one (or a list) leaves the call unkept."""


def _arg_key(v):
    """An argument as part of a replay's key (TypeError: not keyable)."""
    if type(v) is np.ndarray:
        if v.size > SMALL or v.dtype.hasobject:
            raise TypeError("a large host array")
        return np.ndarray, v.dtype.str, v.shape, v.tobytes()
    return _dtypes.exact_key(v)


def array_key(a):
    """A device array's configuration: type, shape, strides, dtype."""
    return type(a), tuple(a.shape), tuple(a.strides), a.dtype.str


def key(*parts):
    """A replay's key: ``parts``, the call's context (:func:`_device`) and :data:`GENERATION`.

    None (nothing kept or looked up) where replays are off or a recording is running (the
    call is then part of the recorded one, which records it in full).
    """
    if not active() or getattr(_local, "rec", None) is not None:
        return None
    return (*parts, _device(), GENERATION[0])


def keep(cache: dict, key, replay, most: int = MOST) -> None:
    """Keep ``replay`` (or False: not replayable) in ``cache`` for the call keyed ``key``.

    The modules its route read are watched from now on (:func:`watch`), and it is kept under
    the generation after the call (a first call's imports bump it), at most ``most`` entries.
    """
    watch()
    _dtypes.remember(cache, (*key[:-1], GENERATION[0]), replay, most)


ENABLED = True
"""Replays on (False: every device call runs in full, as with no replay kept)."""

_OFF = [0]  # open off() blocks


def active() -> bool:
    """Whether calls may replay now (:data:`ENABLED`, outside :func:`off`)."""
    return ENABLED and not _OFF[0]


@contextlib.contextmanager
def off():
    """Calls run in full inside, and record nothing; kept replays stay.

    For A/B timing: setting :data:`ENABLED` is a changed setting, after which every
    configuration records again.

    >>> from stencilkit.backends import cuda_replay
    >>> with cuda_replay.off():
    ...     cuda_replay.active()
    False
    """
    _OFF[0] += 1
    try:
        yield
    finally:
        _OFF[0] -= 1


def memoized(fn):
    """``fn`` (a public function whose first parameter is the input array) with replays.

    Host (NumPy) and Dask input call ``fn`` directly. Device input: a kept replay of the
    call's configuration runs, else ``fn`` runs recorded (see the module docstring). An
    ``output`` parameter, where ``fn`` has one, is the output array (or dtype) the replay
    takes.
    """
    names = list(inspect.signature(fn).parameters)
    at = names.index("output") if "output" in names else None
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def call(input, *args, **kwargs):
        if type(input) is np.ndarray or not is_device(input):
            return fn(input, *args, **kwargs)
        positional = at is not None and len(args) >= at
        out = args[at - 1] if positional else kwargs.get("output")
        array_out = out is not None and type(out) is not np.ndarray and is_device(out)
        kargs, kwords = args, kwargs
        if array_out:  # (an array: keyed by its configuration, below)
            if positional:
                kargs = (*args[:at - 1], None, *args[at:])
            else:
                kwords = {**kwargs, "output": None}
        try:
            k = key(name, array_key(input),
                    tuple([_arg_key(v) for v in kargs]) if kargs else (),
                    tuple([(n, _arg_key(kwords[n])) for n in sorted(kwords)]) if kwords else (),
                    array_key(out) if array_out else None)
            replay = None if k is None else _REPLAYS.get(k)
        except TypeError:  # an array or a list among the arguments: not kept
            k = None
        if k is None:  # (replays off, inside a recording, or not keyable)
            return fn(input, *args, **kwargs)
        if replay is False:  # (recorded once, and not replayable: no recording again)
            return fn(input, *args, **kwargs)
        if replay is not None:
            result = replay(input, out if array_out else None)
            if result is not None:
                REPLAYED[0] += 1
                WHOLE[0] += 1
                return result
        result, replay = _record(fn, (input, *args), kwargs, input,
                                 out if array_out else None)
        keep(_REPLAYS, k, False if replay is None else replay)
        return result

    return call
