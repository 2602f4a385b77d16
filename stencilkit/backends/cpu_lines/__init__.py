"""Line passes whose cost per element does not grow with the window: running sums and van Herk.

A box mean or a min/max over a large box is separable: one pass per axis of a 1-D window of
``k = lo + 1 + hi`` elements. Summing (or comparing) the k elements of every window costs k
operations per element; these passes cost a few, whatever k:

* :func:`box_pass`, a running sum: the window's sum moves along the line by adding the element
  that enters and subtracting the one that leaves. Integer sums are exact (int64). Float sums
  keep non-finite values out of the running sum and count them per window instead, so a NaN or
  an infinity reaches only the windows that hold it; such a window is summed directly, which
  gives IEEE's answer (NaN, or the infinity).
* :func:`extreme_pass`, van Herk / Gil-Werman: the extended line is cut into blocks of k; a
  window starting inside a block covers that block's tail and the next block's head, so its
  extreme is ``op(suffix[i], prefix[i + k - 1])`` with suffix and prefix extremes computed once
  per block (M. van Herk, Pattern Recognit. Lett. 13, 1992; J. Gil and M. Werman, IEEE TPAMI
  15, 1993): three comparisons per element. NaN propagates (``np.maximum``'s rule), confined to
  the windows holding it.

Arrays are viewed as ``(outer, n, inner)`` with the pass along ``n``; the inner axis is
processed in tiles of ``lanes`` contiguous elements side by side, so the inner loops vectorise.
A pass along rows (the last axis) works on each row instead, by span doubling (min/max) or
power-of-two partial sums (box), also vectorised. Further down: one-sweep 2-D box and separable
passes over the last two axes, and large-window medians. Indices past a line's ends go
through the same ``_sk_map`` source as the generated stencils, so both agree at every edge, and
Dask runs these passes per region through the same halo machinery.

Files by family: :mod:`.box`, :mod:`.separable`, :mod:`.extreme`, :mod:`.rank`; :mod:`.common`
holds what they share, :mod:`.program` runs a filter's :class:`stencilkit._passes.Passes`.
"""

from .box import box2_pass, box_pass
from .common import native
from .extreme import extreme_pass
from .rank import pad, rank_pass
from .separable import float32_tie, sep2_pass

__all__ = ["box2_pass", "box_pass", "extreme_pass", "float32_tie", "native", "pad", "rank_pass",
           "sep2_pass"]
