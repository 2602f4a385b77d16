"""Image files in and out: lazy stacks for Dask, atomic writes, clear errors naming the file.

* :func:`imread`: a glob, a list of files, a multi-page TIFF or a Zarr store as a lazy Dask
  array; only headers are read up front (shape, dtype), pixels per chunk (one image or page).
* :func:`imwrite`: a stack into one image file per frame, a multi-page TIFF or a Zarr store;
  every file goes to a temporary name in its folder and is renamed when complete, so no final
  path ever holds a half-written file.
* :func:`read_image` / :func:`write_image`: one file, for the command-line tool.

Formats: PNG (1-bit, 8-bit and 16-bit; grey, grey + alpha, RGB, RGBA; palette images come back
as RGB or RGBA), JPEG (8-bit grey and RGB) and TIFF (any numeric dtype, multi-page), decoded
by Pillow and tifffile (and OpenCV for the 16-bit colour PNGs that Pillow would reduce to 8 bits;
without OpenCV such files are refused, never silently cast). Zarr through zarr/dask.

Axes: an image is ``(rows, cols)`` or ``(rows, cols, channels)``; a multi-page TIFF adds a
leading page axis; a stack adds a leading frame axis.

Damaged files are errors, not warnings: a truncated PNG or JPEG (Pillow's
``LOAD_TRUNCATED_IMAGES`` is not used), a TIFF whose reader logs or warns about missing data,
a decoded image whose shape or dtype differs from its header, and images with more than
``max_pixels`` pixels (decompression bombs) are refused before their pixels are allocated.
"""

from __future__ import annotations

import contextlib
import glob
import io as _bytes_io
import logging
import math
import os
import re
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ._errors import StencilError

__all__ = ["IMAGE_SUFFIXES", "ImageError", "atomic_write", "encode_image", "expand_inputs",
           "image_header", "imread", "imwrite", "natural_key", "read_image", "stale_temporaries",
           "write_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_PIXELS = 2**30
"""Default limit of pixels per image (rows x cols x pages): 1 Gpixel, refused from the header."""

TEMP_MARK = ".stencilkit-tmp-"
"""Part of every temporary file name, so that leftovers of a killed run can be recognised."""


class ImageError(StencilError):
    """A file that cannot be read or written as an image; the message starts with its path."""


def natural_key(path) -> tuple:
    """Sort key that orders ``img2.png`` before ``img10.png``."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


# ------------------------------------------------------------------------------------ inputs

def expand_inputs(inputs) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named by ``inputs`` (paths, globs, folders), in natural order, and the problems.

    A folder stands for the image files in it; a glob may use ``**``. Returns
    ``(files, problems)`` where problems are ``(name, reason)`` for inputs that are not files
    (directories matched by a glob, missing paths). Raises ImageError if nothing matches at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files, problems, seen = [], [], set()

    def add(p: Path):
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            files.append(p)

    for item in inputs:
        text = str(item)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True), key=natural_key)
            if not matches:
                problems.append((text, "no file matches this pattern"))
            for m in matches:
                p = Path(m)
                if p.is_dir():
                    problems.append((m, "is a directory, not an image"))
                else:
                    add(p)
            continue
        p = Path(text)
        if p.is_dir():
            found = sorted((c for c in p.iterdir()
                            if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES),
                           key=natural_key)
            if not found:
                problems.append((text, "folder holds no .png/.jpg/.tif image"))
            for c in found:
                add(c)
        elif p.exists():
            add(p)
        else:
            problems.append((text, "no such file"))
    if not files:
        detail = "; ".join(f"{n}: {r}" for n, r in problems) or "no inputs given"
        raise ImageError(f"no input images ({detail})")
    return files, problems


# ----------------------------------------------------------------------------------- headers

def _png_ihdr(head: bytes):
    """(bit depth, colour type) from a PNG's first bytes, or None if not a PNG."""
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or len(head) < 26:
        return None
    return head[24], head[25]


_PIL_MODES = {
    "1": ((), np.bool_), "L": ((), np.uint8), "LA": ((2,), np.uint8), "RGB": ((3,), np.uint8),
    "RGBA": ((4,), np.uint8), "I;16": ((), np.uint16), "I;16B": ((), np.uint16),
    "I;16L": ((), np.uint16), "I": ((), np.int32), "F": ((), np.float32),
}


def _pil_layout(im):
    """(channels tuple, dtype, convert-to mode or None) for a Pillow image."""
    mode = im.mode
    if mode in ("P", "PA"):
        target = "RGBA" if mode == "PA" or "transparency" in im.info else "RGB"
        return _PIL_MODES[target][0], np.dtype(np.uint8), target
    if mode == "YCbCr":
        return (3,), np.dtype(np.uint8), "RGB"
    if mode not in _PIL_MODES:
        raise ValueError(f"images of Pillow mode {mode!r} are not supported (convert it to RGB "
                         "or grey first)")
    channels, dtype = _PIL_MODES[mode]
    return channels, np.dtype(dtype), None


def image_header(path, max_pixels: int = MAX_PIXELS, *, accept_damaged: bool = False):
    """``(shape, dtype)`` of an image file from its header, without decoding pixels."""
    path = Path(path)
    try:
        shape, dtype = _header(path, max_pixels, accept_damaged)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: not a readable image ({_reason(exc)})") from None
    _check_pixels(path, shape, max_pixels)
    return shape, dtype


def _check_pixels(path, shape, max_pixels):
    pixels = math.prod(shape[:-1] if len(shape) >= 3 and shape[-1] <= 4 else shape)
    if pixels > max_pixels:
        raise ImageError(f"{path}: {shape} is {pixels} pixels, more than the limit of "
                         f"{max_pixels} (a decompression bomb?); raise max_pixels to read it")


def _tiff_pages(path, data: bytes | None = None) -> int:
    """Pages of a TIFF's first series (0 for a single image, grey or colour).

    ``data``: the file's bytes when already read (parsed from them, not read again).
    """
    import tifffile

    source = path if data is None else _bytes_io.BytesIO(data)
    with _strict_tiff(path), tifffile.TiffFile(source) as tif:
        series = tif.series[0]
        return int(series.shape[0]) if series.axes[0] not in "YX" else 0


def _reason(exc) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _header(path: Path, max_pixels: int, lenient: bool = False):
    with open(path, "rb") as f:
        head = f.read(32)
    if not head:
        raise ImageError(f"{path}: empty file (0 bytes)")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        import tifffile

        with _strict_tiff(path, lenient), tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ImageError(f"{path}: TIFF holds no image")
            series = tif.series[0]
            return tuple(int(n) for n in series.shape), np.dtype(series.dtype)
    ihdr = _png_ihdr(head)
    if ihdr is not None:
        width, height = struct.unpack(">II", head[16:24])
        _check_pixels(path, (height, width), max_pixels)  # before any decoder sees it
        if ihdr[0] == 16 and ihdr[1] in (2, 4, 6):
            # 16-bit colour: Pillow would decode it to 8 bits
            return (height, width, {2: 3, 4: 2, 6: 4}[ihdr[1]]), np.dtype(np.uint16)
    from PIL import Image

    with _pil_strict(lenient), Image.open(path) as im:
        channels, dtype, _ = _pil_layout(im)
        width, height = im.size
        if getattr(im, "n_frames", 1) > 1:
            raise ImageError(f"{path}: an animated image ({im.n_frames} frames) is not "
                             "supported; use a multi-page TIFF")
        return (height, width) + channels, dtype


@contextlib.contextmanager
def _pil_strict(lenient: bool = False):
    from PIL import Image, ImageFile

    # Pillow's own bomb check warns at 89 Mpixel; the pixel limit here is ours (max_pixels)
    old_max, old_trunc = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = None
    ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if lenient else "error")
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = old_max, old_trunc


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def _strict_tiff(path, lenient: bool = False):
    """Make tifffile's logged complaints (missing tiles, bad offsets) errors naming the file."""
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if lenient else "error")
            yield
    finally:
        logger.removeHandler(handler)
    if handler.records and not lenient:
        raise ImageError(f"{path}: damaged TIFF ({handler.records[0].getMessage()[:200]})")


# ----------------------------------------------------------------------------------- reading

def read_image(path, max_pixels: int = MAX_PIXELS, *, data: bytes | None = None,
               accept_damaged: bool = False) -> np.ndarray:
    """Decode one image file (all pages of a TIFF) into a NumPy array, strictly.

    ``data``: the file's bytes, if already read (the command-line tool hashes them).
    Raises ImageError, naming the file, for anything but a complete, undamaged image.
    ``accept_damaged=True`` is the explicit opt-in to "readable but damaged" files: a PNG or
    JPEG cut short decodes with its missing part black (Pillow's LOAD_TRUNCATED_IMAGES), and
    TIFF reader warnings are ignored; files that cannot be decoded at all are still errors.
    """
    path = Path(path)
    shape, dtype = image_header(path, max_pixels, accept_damaged=accept_damaged)
    try:
        if data is None:
            data = path.read_bytes()
        arr = _decode(path, data, accept_damaged)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: cannot decode ({_reason(exc)})") from None
    if arr.shape != shape or arr.dtype != dtype:
        raise ImageError(f"{path}: decoded {arr.shape} {arr.dtype} but the header says "
                         f"{shape} {dtype}; the file is damaged")
    return arr


def _decode(path: Path, data: bytes, lenient: bool = False) -> np.ndarray:
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        import tifffile

        with _strict_tiff(path, lenient), tifffile.TiffFile(_bytes_io.BytesIO(data)) as tif:
            arr = tif.series[0].asarray()
        return arr.astype(arr.dtype.newbyteorder("="), copy=False)
    ihdr = _png_ihdr(data[:32])
    if ihdr is not None and ihdr[0] == 16 and ihdr[1] in (2, 4, 6):
        return _decode_png16_colour(path, data)
    from PIL import Image

    with _pil_strict(lenient), Image.open(_bytes_io.BytesIO(data)) as im:
        _, dtype, convert = _pil_layout(im)
        im.load()
        if convert:
            im = im.convert(convert)
        arr = np.asarray(im)
    return np.ascontiguousarray(arr, dtype=dtype)


def _decode_png16_colour(path, data):
    try:
        import cv2
    except ImportError:
        raise ImageError(f"{path}: a 16-bit colour PNG, which Pillow can only read as 8 bits; "
                         "install opencv-python-headless to read it exactly") from None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(f"{path}: cannot decode (damaged 16-bit PNG)")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):  # OpenCV's BGR(A) -> RGB(A)
        arr = arr[..., [2, 1, 0, 3][:arr.shape[2]]]
    return np.ascontiguousarray(arr)


def imread(source, *, max_pixels: int = MAX_PIXELS):
    """A lazy Dask array of an image stack: a glob, list of files, multi-page TIFF or Zarr store.

    Parameters
    ----------
    source : str, path or sequence of them
        A glob (``"frames/*.png"``, ``**`` allowed), a folder (its images), a list of files, a
        single image or multi-page TIFF, or a Zarr store (a path ending in ``.zarr``).
    max_pixels : int, optional
        Refuse images with more pixels than this (checked from the headers). Default 2**30.

    Returns
    -------
    dask.array.Array
        Files: ``(frames, rows, cols[, channels])``, one chunk per file, in natural order of
        the file names (``img2`` before ``img10``). A multi-page TIFF: ``(pages, rows,
        cols[, channels])``, one chunk per page. Zarr: the store's array and chunks. Only
        headers are read here; pixels are read when chunks are computed.

    Raises
    ------
    ImageError
        No file matches; a file is not a readable image; or the files differ in shape or dtype
        (the first file that differs is named, beside the first file's shape and dtype:
        nothing is converted silently).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from stencilkit import io
    >>> d = tempfile.mkdtemp()
    >>> io.imwrite(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), d, name="f{index}.png")
    [...]
    >>> stack = io.imread(os.path.join(d, "f*.png"))
    >>> stack.shape, stack.dtype, int(stack[1].sum().compute())
    ((2, 3, 4), dtype('uint8'), 210)
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    text = str(source) if isinstance(source, (str, os.PathLike)) else None
    if text is not None and text.rstrip("/").endswith(".zarr"):
        if not Path(text).exists():
            raise ImageError(f"{text}: no such Zarr store")
        return da.from_zarr(text)
    files, problems = expand_inputs(source)
    if problems:
        name, reason = problems[0]
        raise ImageError(f"{name}: {reason}")
    first = files[0]
    shape, dtype = image_header(first, max_pixels)
    pages = _tiff_pages(first) if len(files) == 1 and first.suffix.lower() in (
        ".tif", ".tiff") else 0
    if pages:
        name = f"imread-{_token(files)}"
        dsk = {(name, i) + (0,) * (len(shape) - 1): (_read_page, str(first), i, shape[1:], dtype)
               for i in range(pages)}
        chunks = ((1,) * pages,) + tuple((n,) for n in shape[1:])
        return da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=[]), name,
                        chunks, dtype=dtype, meta=np.empty((0,) * len(shape), dtype))
    for f in files[1:]:
        s, d = image_header(f, max_pixels)
        if s != shape or d != dtype:
            raise ImageError(
                f"{f}: {s} {d} differs from the first file {first} ({shape} {dtype}); an image "
                "stack needs one shape and dtype (process such folders with the stencilkit "
                "command, which treats files one by one)")
    name = f"imread-{_token(files)}"
    dsk = {(name, i) + (0,) * len(shape): (_read_frame, str(f), shape, dtype, max_pixels)
           for i, f in enumerate(files)}
    chunks = ((1,) * len(files),) + tuple((n,) for n in shape)
    return da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=[]), name, chunks,
                    dtype=dtype, meta=np.empty((0,) * (len(shape) + 1), dtype))


def _token(files) -> str:
    from dask.base import tokenize

    stats = []
    for f in files:
        st = os.stat(f)
        stats.append((os.path.abspath(f), st.st_size, st.st_mtime_ns))
    return tokenize(stats)


def _read_frame(path, shape, dtype, max_pixels):
    arr = read_image(path, max_pixels)
    if arr.shape != shape or arr.dtype != dtype:  # the file changed since its header was read
        raise ImageError(f"{path}: now {arr.shape} {arr.dtype}, was {shape} {dtype} when the "
                         "stack was opened")
    return arr[None]


def _read_page(path, page, shape, dtype):
    import tifffile

    try:
        with _strict_tiff(path), tifffile.TiffFile(path) as tif:
            arr = tif.series[0].asarray(key=page)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: cannot decode page {page} ({_reason(exc)})") from None
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if arr.shape != shape or arr.dtype != dtype:
        raise ImageError(f"{path}: page {page} is {arr.shape} {arr.dtype}, expected {shape} "
                         f"{dtype}")
    return arr[None]


# ----------------------------------------------------------------------------------- writing

def _temp_prefix(path: Path) -> str:
    """Hidden, recognisable, and naming the writing process (see :func:`stale_temporaries`)."""
    return f".{path.name}{TEMP_MARK}{os.getpid()}-"


def stale_temporaries(folder) -> list[Path]:
    """Temporary files in ``folder`` left by writers that no longer run (killed mid-write).

    A temporary file names the process writing it; one whose process is gone is stale. Files of
    running processes (another batch writing to the same folder) are not listed.
    """
    stale = []
    for p in Path(folder).glob(f".*{TEMP_MARK}*"):
        m = re.search(re.escape(TEMP_MARK) + r"(\d+)-", p.name)
        if m and _alive(int(m.group(1))):
            continue
        stale.append(p)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the path never holds a partial file.

    The bytes go to a temporary file in the same folder, are flushed to disk (fsync), and the
    file is renamed over ``path`` (atomic on POSIX). On any failure (disk full, file-size limit,
    permission) the temporary file is removed and the error raised; ``path`` keeps its old
    content, or stays absent.
    """
    with _replacing(Path(path)) as f:
        f.write(data)


@contextlib.contextmanager
def _replacing(path: Path):
    """A binary file to write that replaces ``path`` only once complete (see atomic_write)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path))
    os.close(fd)
    try:
        with open(tmp, "wb") as f:  # by name: writers such as tifffile want a named file
            yield f
            f.flush()
            os.fchmod(f.fileno(), _FILE_MODE)  # mkstemp's 0600 -> what open() would give
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _photometric(arr) -> str:
    return "rgb" if arr.ndim == 3 and arr.shape[-1] in (3, 4) else "minisblack"


def encode_image(arr: np.ndarray, suffix: str, path="image") -> bytes:
    """The bytes of ``arr`` as a ``suffix`` (.png, .jpg, .tif) file.

    Raises ImageError if that format cannot hold the dtype or channels exactly.
    """
    suffix = suffix.lower()
    arr = np.asarray(arr)
    if suffix in (".tif", ".tiff"):
        import tifffile

        buf = _bytes_io.BytesIO()
        tifffile.imwrite(buf, arr, photometric=_photometric(arr), metadata=None)
        return buf.getvalue()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise ImageError(f"{path}: unknown image format {suffix!r}; use .png, .jpg or .tif")
    fmt = "PNG" if suffix == ".png" else "JPEG"
    if arr.ndim not in (2, 3) or arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4):
        raise ImageError(f"{path}: an array of shape {arr.shape} is not one {fmt} image "
                         "(rows, cols[, 1-4 channels]); write a .tif for other shapes")
    channels = 1 if arr.ndim == 2 else arr.shape[-1]
    kinds = {"PNG": ("bool", "uint8", "uint16"), "JPEG": ("uint8",)}[fmt]
    if arr.dtype.name not in kinds or fmt == "JPEG" and channels not in (1, 3):
        raise ImageError(
            f"{path}: {fmt} cannot hold {arr.dtype}"
            + (f" with {channels} channels" if arr.dtype.name in kinds else "")
            + f" exactly ({fmt} takes {', '.join(kinds)}); name the output .tif to keep it "
            "(nothing is converted silently)")
    if arr.ndim == 3 and channels == 1:
        arr = arr[..., 0]
    if arr.dtype == np.uint16 and arr.ndim == 3:
        try:
            import cv2
        except ImportError:
            raise ImageError(f"{path}: 16-bit colour PNG needs opencv-python-headless (Pillow "
                             "writes 8 bits only); or name the output .tif") from None
        bgr = arr[..., [2, 1, 0, 3][:channels]] if channels >= 3 else arr
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr))
        if not ok:  # pragma: no cover
            raise ImageError(f"{path}: OpenCV could not encode the PNG")
        return buf.tobytes()
    from PIL import Image

    if arr.dtype == np.bool_:
        im = Image.fromarray(arr.astype(np.uint8) * 255).convert("1")
    elif arr.dtype == np.uint16:
        im = Image.fromarray(arr)  # mode I;16
    else:
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        im = Image.fromarray(np.ascontiguousarray(arr), mode=mode) if channels > 1 else \
            Image.fromarray(np.ascontiguousarray(arr))
    buf = _bytes_io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write_image(arr, path) -> int:
    """Encode ``arr`` by the path's extension and write it atomically; returns bytes written."""
    path = Path(path)
    data = encode_image(arr, path.suffix, path)
    atomic_write(path, data)
    return len(data)


def imwrite(array, target, *, name: str = "{index:05d}.png", stems=None):
    """Write a stack: one image per frame into a folder, a multi-page TIFF, or a Zarr store.

    Parameters
    ----------
    array : array_like or dask array
        ``(frames, rows, cols[, channels])`` (a single 2-D image is one frame).
    target : str or path
        A folder (created if missing), a ``.tif``/``.tiff`` file, or a ``.zarr`` store.
    name : str, optional
        For a folder: the file name per frame, with ``{index}`` (the frame number, format
        specs allowed: ``{index:05d}``) and ``{stem}`` (from ``stems``); the extension chooses
        the format. Default ``"{index:05d}.png"``.
    stems : sequence of str, optional
        A stem per frame for ``{stem}`` (e.g. the input files' stems).

    Returns
    -------
    list of Path
        The files written (one per frame; the single file or store otherwise).

    Notes
    -----
    The dtype is kept; a format that cannot hold it exactly (float in PNG, 16-bit in JPEG)
    raises ImageError before anything is written. Every file is written to a temporary name
    and renamed when complete (a store: the whole folder), so a crash never leaves a
    half-written file at a final path. Dask input is computed frame by frame (in parallel by
    Dask's scheduler), never as a whole.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from stencilkit import io
    >>> d = tempfile.mkdtemp()
    >>> [p.name for p in io.imwrite(np.zeros((2, 4, 4), np.uint16), d, name="{stem}.png",
    ...                             stems=["a", "b"])]
    ['a.png', 'b.png']
    """
    target = Path(target)
    is_dask = type(array).__module__.startswith("dask")
    arr = array if is_dask else np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    suffix = target.suffix.lower()
    if suffix == ".zarr":
        return [_write_zarr(arr, target)]
    if suffix in (".tif", ".tiff"):
        return [_write_tiff(arr, target)]
    frames = arr.shape[0]
    if stems is not None and len(stems) != frames:
        raise ImageError(f"{target}: {len(stems)} stems for {frames} frames")
    if "{stem}" in name and stems is None:
        raise ImageError(f"{target}: name {name!r} uses {{stem}}; pass stems=")
    names = [name.format(index=i, stem=stems[i] if stems is not None else str(i))
             for i in range(frames)]
    if len(set(names)) != len(names):
        raise ImageError(f"{target}: the name pattern {name!r} gives two frames the same file "
                         "name; include {index}")
    # refuse a format that cannot hold the data before writing anything
    probe = np.zeros((1, 1) + tuple(arr.shape[3:]), arr.dtype)
    encode_image(probe, Path(names[0]).suffix, target / names[0])
    target.mkdir(parents=True, exist_ok=True)
    paths = [target / n for n in names]
    if is_dask:
        import dask

        frames_ = arr.rechunk((1,) + tuple(-1 for _ in arr.shape[1:])).to_delayed()
        blocks = frames_.reshape(-1)
        dask.compute(*[dask.delayed(_write_block)(b, p) for b, p in zip(blocks, paths)])
    else:
        for frame, p in zip(arr, paths):
            write_image(frame, p)
    return paths


def _write_block(block, path):
    return write_image(block[0], path)


def _write_tiff(arr, target: Path) -> Path:
    import tifffile

    target.parent.mkdir(parents=True, exist_ok=True)
    with _replacing(target) as f, tifffile.TiffWriter(f) as tw:
        for i in range(arr.shape[0]):
            frame = np.asarray(arr[i])  # one frame computed at a time for Dask input
            tw.write(frame, photometric=_photometric(frame), metadata=None)
    return target


def _write_zarr(arr, target: Path) -> Path:
    import shutil

    import dask.array as da

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=_temp_prefix(target)))
    try:
        x = arr if type(arr).__module__.startswith("dask") else da.from_array(
            arr, chunks=(1,) + arr.shape[1:])
        shutil.rmtree(tmp)
        da.to_zarr(x, str(tmp))
        old = None
        if target.exists():
            old = target.with_name(f"{_temp_prefix(target)}old")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
