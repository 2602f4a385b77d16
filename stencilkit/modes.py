"""Boundary modes: names, validation and the index mapping used by the border loops.

The names and semantics are scipy.ndimage's (``reflect``, ``mirror``, ``nearest``, ``wrap``,
``constant``) plus ``skip`` (numba.stencil's rule). A mode is passed to compiled code as a small
integer, so one compiled kernel serves every mode: only the border loop consults it, and the
border is a vanishing fraction of the work on any array worth parallelising.
"""

from __future__ import annotations

from ._errors import StencilError, StencilTypeError

MODES = ("reflect", "mirror", "nearest", "wrap", "constant", "skip")
"""Boundary modes understood by every backend, in the order of their integer codes."""

REFLECT, MIRROR, NEAREST, WRAP, CONSTANT, SKIP = range(len(MODES))

# scipy.ndimage accepts these spellings for the same extensions (``grid-*`` differ from the
# plain names only for interpolation, never for filters).
_ALIASES = {
    "grid-mirror": "reflect",
    "grid-wrap": "wrap",
    "grid-constant": "constant",
}


def mode_code(mode: str, where: str = "stencil") -> int:
    """Return the integer code of a boundary mode name, or raise a ValueError naming the choices."""
    if not isinstance(mode, str):
        raise StencilTypeError(
            f"{where}: mode must be a string, one of {', '.join(MODES)}; got {mode!r}"
        )
    name = _ALIASES.get(mode, mode)
    try:
        return MODES.index(name)
    except ValueError:
        raise StencilError(
            f"{where}: unknown boundary mode {mode!r}; use one of {', '.join(MODES)}"
        ) from None


# Source of the index map, pasted into every generated module so that the module is
# self-contained for numba's on-disk cache. ``_sk_map(k, n, mode)`` maps a possibly
# out-of-range index ``k`` on an axis of length ``n >= 1`` to an index inside it, or -1 for
# ``constant`` (the caller then uses cval). The periodic formulas (period 2n for reflect,
# 2n - 2 for mirror) extend correctly to axes shorter than the radius, which is what scipy
# computes since gh-11661.
MAP_SOURCE = f"""
@_sk_njit
def _sk_map(k, n, mode):
    if k >= 0 and k < n:
        return k
    if mode == {REFLECT}:
        p = 2 * n
        k = k % p
        return k if k < n else p - 1 - k
    if mode == {MIRROR}:
        if n == 1:
            return 0
        p = 2 * n - 2
        k = k % p
        return k if k < n else p - k
    if mode == {NEAREST}:
        return 0 if k < 0 else n - 1
    if mode == {WRAP}:
        return k % n
    return -1
"""
