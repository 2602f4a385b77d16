"""A filter's passes (:class:`stencilkit._passes.Passes`) on the CPU line kernels."""

from __future__ import annotations

import numpy as np

from ..._passes import Box, Box2, Extreme, Generic, Generic1d, Line1, Rank, Sep2, SepSum2
from .box import box2_pass, box_pass
from .common import native
from .extreme import extreme_pass
from .generic import generic1d_pass, generic_pass
from .rank import rank_pass
from .separable import outer_pass, sep2_pass, sepsum2_pass


class LineProgram:
    """The passes over a whole array or a Dask region, one after another.

    Each pass reads the previous one's result, and the constant outside the array follows along
    (the pass applied to cval). Picklable, for Dask workers in other processes.
    """

    def __init__(self, passes):
        self.passes = passes

    def __call__(self, region, out=None):
        """The passes over ``region``; ``out``, if given, may receive the last pass directly."""
        plan = self.passes
        mode = plan.mode
        x = np.ascontiguousarray(region)
        x = x.astype(native(x.dtype), copy=False)
        cval = plan.cval
        # (intermediate and final dtypes go through native: compiled code has no float16, so
        # it works in float32 and run() casts the result back)
        for i, p in enumerate(plan.passes):
            last = i == len(plan.passes) - 1 and out is not None

            def into(dtype, x=x, last=last):  # where this pass writes: out, if it can
                return _direct(out, x, dtype) if last else None

            if isinstance(p, Box):
                dtype = native(p.dtype)
                x = box_pass(x, p.axis, p.lo, p.hi, mode, cval, dtype, p.divisor, p.clip,
                             dst=into(dtype))
                k, divisor = p.lo + p.hi + 1, p.divisor
            elif isinstance(p, Box2):
                dtype = native(p.dtype)
                x = box2_pass(x, p.lo0, p.hi0, p.lo1, p.hi1, mode, cval, dtype, p.divisor,
                              p.clip, dst=into(dtype))
                k, divisor = (p.lo0 + p.hi0 + 1) * (p.lo1 + p.hi1 + 1), p.divisor
            elif isinstance(p, Sep2):
                dtype = native(p.dtype)
                # float32 data is summed in float32, as scipy keeps it between passes
                acc = np.float32 if x.dtype == np.float32 else np.float64
                x = sep2_pass(x, np.array(p.wv), p.lov, np.array(p.wh), p.loh, mode, cval,
                              dtype, acc=acc, dst=into(dtype))
                cval = cval * sum(p.wv) * sum(p.wh)
                continue
            elif isinstance(p, Line1):  # (the weights' own float type: no float16)
                dtype = np.dtype(p.dtype)
                x = outer_pass(x, p.axis, p.offsets, np.array(p.weights, dtype), mode,
                               dtype.type(cval), p.divisor, dst=into(dtype))
                cval = cval * sum(p.weights) / (p.divisor or 1)
                continue
            elif isinstance(p, SepSum2):  # (a filter's one pass: as its terms' Sep2s, added)
                dtype = native(p.dtype)
                acc = np.float32 if x.dtype == np.float32 else np.float64
                terms = [(np.array(wv), np.array(wh)) for wv, wh in p.terms]
                x = sepsum2_pass(x, terms, p.lov, p.loh, mode, p.norm, dtype, acc=acc,
                                 dst=into(dtype))
                continue
            elif isinstance(p, Rank):
                x = rank_pass(x, np.array(p.footprint, bool), p.lo, p.rank, mode, cval, p.last2,
                              dst=into(x.dtype))
                continue
            elif isinstance(p, Extreme):
                x = extreme_pass(x, p.axis, p.lo, p.hi, mode, cval, p.is_max, dst=into(x.dtype))
                continue
            elif isinstance(p, Generic):  # (a filter's one pass, into its output's dtype)
                dtype = native(plan.out_dtype)
                x = generic_pass(x, p.footprint, p.lo, p.function, mode, cval, dtype,
                                 dst=into(dtype))
                continue
            elif isinstance(p, Generic1d):
                dtype = native(plan.out_dtype)
                x = generic1d_pass(x, p.axis, p.size, p.lo, p.function, mode, cval, dtype,
                                   dst=into(dtype))
                continue
            else:  # pragma: no cover - a pass type without a CPU kernel
                raise TypeError(f"no CPU line kernel for {type(p).__name__}")
            # outside the array, the next pass sees this one applied to constant cval
            cval = cval * k / divisor if divisor != 1 or dtype.kind == "f" else cval * k
        return x.astype(plan.out_dtype, copy=False)  # float16 results come back as float16

    def __dask_tokenize__(self):
        p = self.passes
        return ("stencilkit.cpu_lines", repr(p.passes), p.mode, p.cval, p.out_dtype.str)


def _direct(out, src, dtype):
    """``out`` when a line pass can write its result straight into it, else None.

    It must be exactly the array the pass would allocate (C-contiguous, native dtype) and
    share no memory with the pass' input: the passes read ahead of where they write.
    """
    if (out.dtype == dtype and out.flags.c_contiguous and out.flags.writeable
            and out.flags.aligned and not np.may_share_memory(out, src)):
        return out
    return None


def run(passes, arr, out):
    """The passes over the NumPy array ``arr``, into ``out`` (any layout) or a new array."""
    result = LineProgram(passes)(arr, out)
    if out is not None:
        if result is not out:
            np.copyto(out, result, casting="unsafe")
        return out
    return result if result.dtype == passes.out_dtype else result.astype(passes.out_dtype)
