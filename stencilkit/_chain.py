"""Fused chains of stencils: one halo exchange for a whole pipeline on Dask."""

from __future__ import annotations

import numpy as np

from . import backends
from ._errors import StencilError, StencilTypeError
from .backends import is_dask_array


class Chain:
    """Stencils applied one after another, as one operation; create it with :func:`chain`.

    Attributes: ``stages`` (``(stencil, params)`` pairs), ``ndim``, ``radius`` (the sum of the
    stages' radii: the halo one exchange needs).
    """

    def __init__(self, stages):
        from ._stencil import Stencil

        parsed = []
        for stage in stages:
            st, *params = stage if isinstance(stage, tuple) else (stage,)
            if not isinstance(st, Stencil):
                raise StencilTypeError(
                    f"chain: each stage is a Stencil or a (Stencil, *params) tuple; got "
                    f"{type(st).__name__}"
                )
            if len(st.arrays) != 1 or len(params) != len(st.params):
                raise StencilError(
                    f"chain: stage {st._where} takes {len(st.arrays)} array(s) and parameters "
                    f"({', '.join(st.params) or 'none'}); a chain stage takes one array and its "
                    "parameters, as (stencil, *params)"
                )
            parsed.append((st, tuple(params)))
        if not parsed:
            raise StencilError("chain: give at least one stage")
        ndims = {st.ndim for st, _ in parsed}
        if len(ndims) != 1:
            raise StencilError(f"chain: stages have different numbers of core axes {sorted(ndims)}")
        self.stages = tuple(parsed)
        self.ndim = ndims.pop()
        self.radius = tuple(
            (sum(st.radius[d][0] for st, _ in parsed), sum(st.radius[d][1] for st, _ in parsed))
            for d in range(self.ndim)
        )

    def __repr__(self):
        names = " -> ".join(st.__name__ for st, _ in self.stages)
        return f"<stencilkit.Chain {names} radius={self.radius}>"

    def __call__(self, a, *, parallel=None):
        """Apply the stages in order, each with its own options (mode, cval, dtypes, ...)."""
        if is_dask_array(a):  # one halo exchange for all stages
            return backends.get("dask").apply_chain(self, a)
        for st, params in self.stages:
            a = st(a, *params, parallel=parallel)
        return a

    def out_dtype(self, shape, dtype):
        """The result's dtype for input of ``shape`` and ``dtype`` (checks every stage)."""
        for st, _ in self.stages:
            dtype = st._plan([_Like(shape, dtype)], None, {}).out_dtype
        return dtype


class _Like:
    """Shape and dtype of an intermediate result, for validating the next stage."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, np.dtype(dtype)


def chain(*stages) -> Chain:
    """Fuse stencils into one operation: on Dask, one halo exchange for the whole pipeline.

    Parameters
    ----------
    *stages : Stencil or tuple
        Stencils with one array argument, or ``(stencil, *params)`` for stencils with scalar
        parameters, applied in order; each keeps its own decorator options.

    Returns
    -------
    Chain
        Callable on NumPy and Dask arrays. The result equals applying the stages one after
        another, with each stage's boundary mode at the array's edges, bit for bit. On Dask,
        each chunk gathers a halo as deep as the sum of the radii once, instead of once per
        stage (a chain mixing ``wrap`` with other modes exchanges per stage).

    Examples
    --------
    >>> import numpy as np, stencilkit as sk
    >>> @sk.stencil(mode="nearest")
    ... def dx(x):
    ...     return x[1] - x[0]
    >>> @sk.stencil(mode="nearest")
    ... def scale(x, k):
    ...     return x[0] * k
    >>> sk.chain(dx, (scale, 10))(np.array([0, 1, 3, 6]))
    array([10, 20, 30,  0])
    """
    return Chain(stages)
