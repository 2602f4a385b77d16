"""Filters and downsampling beside scipy.ndimage, OpenCV and skimage, in one run.

    python benchmarks/filters.py [--size 4000] [--rounds 9] [--no-scipy] [--only TEXT]

Every filter of tests/filter_table.py (the table the tests check against scipy) runs with the
table's first parameters on a ``size x size`` uint8 image (Gaussian: also float32), plus
large-window variants and morphology, beside scipy.ndimage with the same arguments and
OpenCV's equivalent; then block-mean halving of a 12000 x 5000 uint8 image (cv2.resize
INTER_AREA, skimage), one pyramid level (cv2.pyrDown), the generic filters and filters of 3-D
volumes (``--only volume``). Each line gives the best of ``--rounds`` interleaved rounds in ms
(stencilkit, a numpy.copyto of as many bytes and each peer in turn, so that all see the same
moments of a shared machine; scipy, slow, runs once), the bandwidth (bytes read + written),
its ratio to that copy, and stencilkit's speed-up over each peer. The peers' borders and
integer rounding differ a little (see stencilkit.filters): this compares the same work per
pixel.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from filter_table import entry  # noqa: E402
from kernels import span_callable, window_spread  # noqa: E402

from stencilkit import filters, morphology, resample  # noqa: E402


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def cases(size, scipy_on):
    """(label, input, stencilkit callable, {peer: callable})."""
    import scipy.ndimage as ndi

    cv2 = _cv2()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (size, size), dtype=np.uint8)
    flt = rng.random((size, size), dtype=np.float32)
    out8 = np.empty_like(img)
    outf = np.empty_like(flt)
    reflect = getattr(cv2, "BORDER_REFLECT", None)
    k3 = np.ones((3, 3), np.uint8)
    k15 = np.ones((15, 15), np.uint8)
    blobs = ndi.uniform_filter(img, 5) > 127  # (binary morphology: bool in and out, regions
    # and holes of a few pixels; OpenCV's on 0/255 uint8)
    bout = np.empty_like(blobs)
    blobs8 = blobs.astype(np.uint8) * 255
    cross8 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)

    def sk(name, a, out, **kw):
        params = {**(entry(name).params[0] if entry(name).params else {}), **kw}
        return lambda: getattr(filters, name)(a, output=out, **params)

    def sp(name, a, out, **kw):
        params = {**(entry(name).params[0] if entry(name).params else {}), **kw}
        return lambda: getattr(ndi, name)(a, output=out, **params)

    rows = [
        ("uniform_filter 3x3", img, sk("uniform_filter", img, out8),
         sp("uniform_filter", img, out8),
         cv2 and (lambda: cv2.blur(img, (3, 3), dst=out8, borderType=reflect))),
        ("uniform_filter 15x15", img, sk("uniform_filter", img, out8, size=15),
         sp("uniform_filter", img, out8, size=15),
         cv2 and (lambda: cv2.blur(img, (15, 15), dst=out8, borderType=reflect))),
        ("gaussian_filter s=1", img, sk("gaussian_filter", img, out8),
         sp("gaussian_filter", img, out8),
         cv2 and (lambda: cv2.GaussianBlur(img, (9, 9), 1.0, dst=out8, borderType=reflect))),
        ("gaussian_filter s=2 f32", flt, sk("gaussian_filter", flt, outf, sigma=2.0),
         sp("gaussian_filter", flt, outf, sigma=2.0),
         cv2 and (lambda: cv2.GaussianBlur(flt, (17, 17), 2.0, dst=outf, borderType=reflect))),
        ("correlate 3x3", img, sk("correlate", img, out8), sp("correlate", img, out8),
         cv2 and (lambda: cv2.filter2D(img, -1, entry("correlate").params[0]["weights"]
                                       .astype(np.float32), dst=out8, borderType=reflect))),
        ("convolve 3x2", img, sk("convolve", img, out8), sp("convolve", img, out8), None),
        ("laplace", img, sk("laplace", img, out8), sp("laplace", img, out8),
         cv2 and (lambda: cv2.Laplacian(img, -1, dst=out8, ksize=1, borderType=reflect))),
        ("sobel", img, sk("sobel", img, out8), sp("sobel", img, out8),
         cv2 and (lambda: cv2.Sobel(img, -1, 0, 1, dst=out8, ksize=3, borderType=reflect))),
        ("prewitt", img, sk("prewitt", img, out8), sp("prewitt", img, out8), None),
        ("minimum_filter 3x3", img, sk("minimum_filter", img, out8),
         sp("minimum_filter", img, out8),
         cv2 and (lambda: cv2.erode(img, k3, dst=out8, borderType=reflect))),
        ("minimum_filter 15x15", img, sk("minimum_filter", img, out8, size=15),
         sp("minimum_filter", img, out8, size=15),
         cv2 and (lambda: cv2.erode(img, k15, dst=out8, borderType=reflect))),
        ("maximum_filter 3x3", img, sk("maximum_filter", img, out8, size=3, origin=0),
         sp("maximum_filter", img, out8, size=3, origin=0),
         cv2 and (lambda: cv2.dilate(img, k3, dst=out8, borderType=reflect))),
        ("median_filter 3x3", img, sk("median_filter", img, out8),
         sp("median_filter", img, out8), cv2 and (lambda: cv2.medianBlur(img, 3, dst=out8))),
        ("rank_filter 7-element footprint", img, sk("rank_filter", img, out8),
         sp("rank_filter", img, out8), None),
        ("gaussian_laplace s=2 f32", flt, lambda: filters.gaussian_laplace(flt, 2.0, output=outf),
         lambda: ndi.gaussian_laplace(flt, 2.0, output=outf), None),
        ("gaussian_gradient_magnitude s=2 f32", flt,
         lambda: filters.gaussian_gradient_magnitude(flt, 2.0, output=outf),
         lambda: ndi.gaussian_gradient_magnitude(flt, 2.0, output=outf), None),
        ("uniform_filter1d 15 axis 0", img,
         lambda: filters.uniform_filter1d(img, 15, axis=0, output=out8),
         lambda: ndi.uniform_filter1d(img, 15, axis=0, output=out8), None),
        ("percentile_filter 10% 15x15", img,
         sk("percentile_filter", img, out8, percentile=10, size=15, origin=0),
         sp("percentile_filter", img, out8, percentile=10, size=15, origin=0), None),
        # morphology (stencilkit.morphology on the min/max filters; OpenCV's morphologyEx)
        ("grey_opening 15x15", img,
         lambda: morphology.grey_opening(img, size=15, output=out8),
         lambda: ndi.grey_opening(img, size=15, output=out8),
         cv2 and (lambda: cv2.morphologyEx(img, cv2.MORPH_OPEN, k15, dst=out8,
                                           borderType=reflect))),
        ("white_tophat 15x15", img,
         lambda: morphology.white_tophat(img, size=15, output=out8),
         lambda: ndi.white_tophat(img, size=15, output=out8),
         cv2 and (lambda: cv2.morphologyEx(img, cv2.MORPH_TOPHAT, k15, dst=out8,
                                           borderType=reflect))),
        ("binary_erosion cross x3", blobs,
         lambda: morphology.binary_erosion(blobs, iterations=3, output=bout),
         lambda: ndi.binary_erosion(blobs, iterations=3, output=bout),
         cv2 and (lambda: cv2.erode(blobs8, cross8, iterations=3,
                                    borderType=cv2.BORDER_CONSTANT, borderValue=0))),
        ("binary_fill_holes", blobs, lambda: morphology.binary_fill_holes(blobs, output=bout),
         lambda: ndi.binary_fill_holes(blobs, output=bout), None),
    ]
    result = []
    for label, a, ours, theirs, ocv in rows:
        peers = {}
        if scipy_on:
            peers["scipy"] = theirs
        if ocv:
            peers["opencv"] = ocv
        result.append((label, a.nbytes * 2, ours, peers))
    big = rng.integers(0, 256, (12000, 5000), dtype=np.uint8)
    peers = {}
    if cv2:
        peers["opencv"] = lambda: cv2.resize(big, (2500, 6000), interpolation=cv2.INTER_AREA)
    try:
        from skimage.transform import downscale_local_mean

        peers["skimage"] = lambda: downscale_local_mean(big, (2, 2))
    except ImportError:
        pass
    result.append(("block_reduce mean 2x2 12000x5000", big.nbytes * 5 // 4,
                   lambda: resample.block_reduce(big, 2), peers))
    result.append(("pyramid_down 1 level 12000x5000", big.nbytes * 5 // 4,
                   lambda: resample.pyramid_down(big, 1),
                   {"opencv": lambda: cv2.pyrDown(big)} if cv2 else {}))
    # generic_filter: scipy calls the function from Python per element (hence a smaller image);
    # stencilkit compiles it (numba) and calls it from a compiled loop on every core
    small = img[:500, :500].copy()
    for label, fn in (("np.std 5x5", np.std), ("loop 5x5", window_spread)):
        result.append((f"generic_filter {label} (500^2)", small.nbytes * 2,
                       functools.partial(filters.generic_filter, small, fn, size=5),
                       {"scipy": functools.partial(ndi.generic_filter, small, fn, size=5)}
                       if scipy_on else {}))
    # a C function (scipy.LowLevelCallable of a numba cfunc): scipy calls it from C too
    mid = rng.random((2000, 2000))
    span = span_callable()
    result.append(("generic_filter C fn 3x3 (2000^2)", mid.nbytes * 2,
                   functools.partial(filters.generic_filter, mid, span, size=3),
                   {"scipy": functools.partial(ndi.generic_filter, mid, span, size=3)}
                   if scipy_on else {}))
    # vectorized_filter: NumPy's reductions over sliding windows, as scipy's own (whose batches
    # run one after another; stencilkit's on every core), beside the compiled generic_filter
    for label, fn in (("np.std", np.std), ("np.median", np.median)):
        peers = {"generic": functools.partial(filters.generic_filter, mid, fn, size=5)}
        if hasattr(ndi, "vectorized_filter"):  # (scipy 1.16 and later)
            peers["scipy"] = functools.partial(ndi.vectorized_filter, mid, fn, size=5)
        result.append((f"vectorized_filter {label} 5x5 (2000^2)", mid.nbytes * 2,
                       functools.partial(filters.vectorized_filter, mid, fn, size=5), peers))
    # 16-bit median beyond the sorting networks (two-level histogram); its peer is the generic
    # selection path it replaced (OpenCV's medianBlur takes 16-bit images only up to 5x5)
    from stencilkit.backends import cpu_lines as _lines

    u16 = rng.integers(0, 65536, (2000, 2000), dtype=np.uint16)
    box = np.ones((15, 15), bool)
    peers = {"quickselect": lambda: _lines.rank_pass(u16, box, (7, 7), 112, "reflect", 0.0)}
    if scipy_on:
        peers["scipy"] = lambda: ndi.median_filter(u16, 15)
    result.append(("median_filter 15x15 uint16 2000x2000", u16.nbytes * 2,
                   lambda: filters.median_filter(u16, 15), peers))
    result += _volume_cases(rng, scipy_on)
    return result


def _volume_cases(rng, scipy_on):
    """3-D rows: passes along axis 0, whose rows lie a plane apart (``volume`` in the label).

    The ``generated`` peer is the generated stencil of the same 17 taps, which those passes
    ran as before the line kernel for axes before the last two (``cpu_lines.outer_pass``).
    """
    import scipy.ndimage as ndi

    from stencilkit import _passes

    vol = rng.random((128, 512, 512), dtype=np.float32)
    outv = np.empty_like(vol)
    vol8 = rng.integers(0, 256, (64, 1024, 1024), dtype=np.uint8)
    out8 = np.empty_like(vol8)
    w = np.ones(17, np.float32) / 17
    taps = [((o, 0, 0), x) for o, x in zip(range(-8, 9), w)]
    acc = np.dtype(np.float32)
    generated = _passes.linear_source(3, taps, acc, "float", acc)
    rows = [
        ("volume correlate1d 17 axis 0 f32", vol,
         lambda: filters.correlate1d(vol, w, axis=0, output=outv),
         {"generated": lambda: _passes.run(generated, vol, "reflect", 0.0, acc, acc, outv),
          "scipy": lambda: ndi.correlate1d(vol, w, axis=0, output=outv)}),
    ]
    # the Gaussians beside scipy's function of the same name and arguments
    for name, a, out, what in (("gaussian_filter", vol, outv, "f32"),
                               ("gaussian_laplace", vol, outv, "f32"),
                               ("gaussian_gradient_magnitude", vol, outv, "f32"),
                               ("gaussian_filter", vol8, out8, "uint8")):
        ours = functools.partial(getattr(filters, name), a, 2.0, output=out)
        theirs = functools.partial(getattr(ndi, name), a, 2.0, output=out)
        rows.append((f"volume {name} s=2 {what}", a, ours, {"scipy": theirs}))
    return [(label + f" {'x'.join(map(str, a.shape))}", a.nbytes * 2, ours,
             {k: v for k, v in peers.items() if scipy_on or k != "scipy"})
            for label, a, ours, peers in rows]


def interleaved(fns, rounds, once=()):
    """Best time of each callable over ``rounds`` rounds that call each in turn (those in
    ``once``, the slow references, only in the first round), so all see the same moments of
    a shared, noisy machine. Each turn calls twice and times the second call: the first
    absorbs the switch between thread pools (numba's OpenMP threads spin a while after each
    parallel loop, and would slow OpenCV's pool right after, or the reverse)."""
    best = {}
    for r in range(rounds):
        for name, fn in fns.items():
            if r and name in once:
                continue
            if name not in once:
                fn()
            t0 = time.perf_counter()
            fn()
            best[name] = min(best.get(name, math.inf), time.perf_counter() - t0)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--no-scipy", action="store_true", help="skip the (slow) scipy runs")
    parser.add_argument("--only", metavar="TEXT", help="only the rows whose label has TEXT")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; image {args.size}^2 uint8; best of {args.rounds} "
          f"interleaved rounds; 'x copy': numpy.copyto of as many bytes, in the same rounds")
    print(f"{'':34} {'stencilkit':>22}   speed-up over")
    for label, nbytes, ours, peers in cases(args.size, not args.no_scipy):
        if args.only and args.only not in label:
            continue
        src = np.ones(nbytes // 2, np.uint8)
        dst = np.empty_like(src)
        fns = {"ours": ours, "copy": functools.partial(np.copyto, dst, src), **peers}
        for fn in fns.values():
            fn()  # compile / load from cache, touch the output
        best = interleaved(fns, args.rounds, once=("scipy", "quickselect"))
        t_ours = best["ours"]
        ratios = [f"{name} {best[name] / t_ours:6.1f}x ({best[name] * 1e3:7.1f} ms)"
                  for name in peers]
        print(f"{label:34} {t_ours * 1e3:7.1f} ms {nbytes / t_ours / 1e9:5.1f} GB/s "
              f"{best['copy'] / t_ours:4.2f}x copy   {'   '.join(ratios)}")


if __name__ == "__main__":
    main()
