"""stencilkit.io: lossless round trips, lazy stacks, strict reading, atomic writes."""

import io as bytes_io
import os
import struct
import zlib

import numpy as np
import pytest

from stencilkit import io

pytest.importorskip("PIL")
pytest.importorskip("tifffile")
da = pytest.importorskip("dask.array")

rng = np.random.default_rng(0)

IMAGES = {
    "grey8.png": rng.integers(0, 256, (9, 13), dtype=np.uint8),
    "grey16.png": rng.integers(0, 65536, (9, 13), dtype=np.uint16),
    "bool.png": rng.integers(0, 2, (9, 13)).astype(bool),
    "la8.png": rng.integers(0, 256, (9, 13, 2), dtype=np.uint8),
    "rgb8.png": rng.integers(0, 256, (9, 13, 3), dtype=np.uint8),
    "rgba8.png": rng.integers(0, 256, (9, 13, 4), dtype=np.uint8),
    "rgb16.png": rng.integers(0, 65536, (9, 13, 3), dtype=np.uint16),
    "grey.tif": rng.integers(0, 256, (9, 13), dtype=np.uint8),
    "float.tif": rng.standard_normal((9, 13)).astype(np.float32),
    "int16.tif": rng.integers(-30000, 30000, (9, 13), dtype=np.int16),
    "rgb.tif": rng.integers(0, 256, (9, 13, 3), dtype=np.uint8),
    "pages.tif": rng.integers(0, 65536, (4, 9, 13), dtype=np.uint16),
}


@pytest.mark.parametrize("name", list(IMAGES))
def test_lossless_round_trip(tmp_path, name):
    a = IMAGES[name]
    io.write_image(a, tmp_path / name)
    assert io.image_header(tmp_path / name) == (a.shape, a.dtype)
    b = io.read_image(tmp_path / name)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)


def test_jpeg_is_8_bit_grey_or_rgb(tmp_path):
    a = np.full((8, 8, 3), 128, np.uint8)
    io.write_image(a, tmp_path / "x.jpg")
    b = io.read_image(tmp_path / "x.jpg")
    assert b.shape == a.shape and np.abs(b.astype(int) - 128).max() <= 2
    with pytest.raises(io.ImageError, match="JPEG cannot hold uint16"):
        io.write_image(np.zeros((8, 8), np.uint16), tmp_path / "y.jpg")
    assert not (tmp_path / "y.jpg").exists()


def test_palette_png_reads_as_rgb(tmp_path):
    from PIL import Image

    im = Image.fromarray(IMAGES["rgb8.png"]).convert("P", palette=Image.Palette.ADAPTIVE)
    im.save(tmp_path / "p.png")
    a = io.read_image(tmp_path / "p.png")
    assert a.shape == (9, 13, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, np.asarray(im.convert("RGB")))


def test_formats_refuse_what_they_cannot_hold(tmp_path):
    for arr, name, match in [
        (np.zeros((4, 4), np.float32), "f.png", "PNG cannot hold float32"),
        (np.zeros((4, 4), np.int16), "i.png", "PNG cannot hold int16"),
        (np.zeros((4, 4, 5), np.uint8), "c.png", "not one PNG image"),
        (np.zeros((4, 4)), "x.bmp", "unknown image format"),
    ]:
        with pytest.raises(io.ImageError, match=match):
            io.write_image(arr, tmp_path / name)
        assert not (tmp_path / name).exists()


def test_imread_glob_in_natural_order_lazily(tmp_path):
    frames = rng.integers(0, 256, (12, 5, 6), dtype=np.uint8)
    for i, f in enumerate(frames):
        io.write_image(f, tmp_path / f"img{i}.png")
    stack = io.imread(str(tmp_path / "img*.png"))
    assert isinstance(stack, da.Array) and stack.shape == (12, 5, 6)
    assert stack.chunks[0] == (1,) * 12  # one chunk per file
    np.testing.assert_array_equal(stack.compute(), frames)  # img2 before img10
    listed = io.imread([tmp_path / "img3.png", tmp_path / "img1.png"])
    np.testing.assert_array_equal(listed.compute(), frames[[3, 1]])
    np.testing.assert_array_equal(io.imread(tmp_path).compute(), frames)  # a folder


def test_imread_reads_pixels_only_when_computed(tmp_path):
    for i in range(3):
        io.write_image(np.full((4, 4), i, np.uint8), tmp_path / f"f{i}.png")
    stack = io.imread(str(tmp_path / "*.png"))
    (tmp_path / "f1.png").write_bytes(b"")  # damaged after opening: noticed at compute
    np.testing.assert_array_equal(stack[0].compute(), np.zeros((4, 4)))
    with pytest.raises(io.ImageError, match="f1.png: empty file"):
        stack[1].compute()


def test_imread_multipage_tiff_and_zarr(tmp_path):
    pages = IMAGES["pages.tif"]
    io.write_image(pages, tmp_path / "pages.tif")
    x = io.imread(tmp_path / "pages.tif")
    assert x.shape == pages.shape and x.chunks[0] == (1,) * 4
    np.testing.assert_array_equal(x.compute(), pages)
    pytest.importorskip("zarr")
    io.imwrite(pages, tmp_path / "s.zarr")
    z = io.imread(str(tmp_path / "s.zarr"))
    np.testing.assert_array_equal(z.compute(), pages)
    io.imwrite(da.from_array(pages, chunks=(2, 9, 13)) + 1, tmp_path / "s.zarr")  # replaced
    np.testing.assert_array_equal(io.imread(str(tmp_path / "s.zarr")).compute(), pages + 1)
    assert not [p for p in os.listdir(tmp_path) if io.TEMP_MARK in p]


def test_imwrite_folder_tiff_and_dask(tmp_path):
    stack = rng.integers(0, 65536, (3, 6, 7), dtype=np.uint16)
    paths = io.imwrite(da.from_array(stack, chunks=(2, 3, 7)), tmp_path / "out",
                       name="{stem}_{index:02d}.png", stems=["a", "b", "c"])
    assert [p.name for p in paths] == ["a_00.png", "b_01.png", "c_02.png"]
    np.testing.assert_array_equal(io.imread(str(tmp_path / "out" / "*.png")).compute(), stack)
    io.imwrite(stack, tmp_path / "all.tif")
    np.testing.assert_array_equal(io.imread(tmp_path / "all.tif").compute(), stack)
    with pytest.raises(io.ImageError, match="same file name"):
        io.imwrite(stack, tmp_path / "dup", name="same.png")


def test_mixed_shapes_and_dtypes_name_the_first_offender(tmp_path):
    io.write_image(np.zeros((4, 4), np.uint8), tmp_path / "a1.png")
    io.write_image(np.zeros((4, 4), np.uint8), tmp_path / "a2.png")
    io.write_image(np.zeros((4, 4), np.uint16), tmp_path / "a3.png")
    io.write_image(np.zeros((5, 4), np.uint8), tmp_path / "a4.png")
    with pytest.raises(io.ImageError, match=r"a3.png: \(4, 4\) uint16 differs from the first "
                                             r"file .*a1.png \(\(4, 4\) uint8\)"):
        io.imread(str(tmp_path / "a*.png"))


def test_empty_glob_missing_file_and_directories(tmp_path):
    with pytest.raises(io.ImageError, match="no file matches this pattern"):
        io.imread(str(tmp_path / "*.png"))
    with pytest.raises(io.ImageError, match="no such file"):
        io.imread(tmp_path / "missing.png")
    (tmp_path / "sub").mkdir()
    io.write_image(np.zeros((2, 2), np.uint8), tmp_path / "x.png")
    files, problems = io.expand_inputs([str(tmp_path / "*")])
    assert [f.name for f in files] == ["x.png"]
    assert problems == [(str(tmp_path / "sub"), "is a directory, not an image")]


def _png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def test_damaged_and_hostile_files_are_refused_by_name(tmp_path):
    good = bytes_io.BytesIO()
    from PIL import Image

    Image.fromarray(IMAGES["grey8.png"]).save(good, "PNG")
    data = good.getvalue()
    cases = {
        "empty.png": b"",
        "garbage.png": os.urandom(500),
        "text.tif": b"this is not an image\n" * 10,
        "truncated.png": data[: len(data) // 2],
        # a valid header claiming 100000 x 100000 pixels, and no pixel data
        "bomb.png": b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)),
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(io.ImageError) as err:
            io.read_image(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name))
    with pytest.raises(io.ImageError, match="more than the limit .* decompression bomb"):
        io.image_header(tmp_path / "bomb.png")


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        io.atomic_write(target, b"new content")
    assert target.read_bytes() == b"old"  # the old file, untouched
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left behind


def test_written_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    io.write_image(np.zeros((2, 2), np.uint8), tmp_path / "a.png")
    io.imwrite(np.zeros((2, 2, 2), np.uint8), tmp_path / "s.tif")
    for name in ("a.png", "s.tif"):  # as open() would create them, not mkstemp's 0600
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_only_temporaries_of_dead_writers_are_stale(tmp_path):
    dead = subprocess_pid_that_exited()
    mine = tmp_path / f".a.png{io.TEMP_MARK}{os.getpid()}-xyz"
    gone = tmp_path / f".b.png{io.TEMP_MARK}{dead}-xyz"
    for p in (mine, gone):
        p.write_bytes(b"partial")
    assert io.stale_temporaries(tmp_path) == [gone]


def subprocess_pid_that_exited():
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_damaged_files_only_with_the_explicit_opt_in(tmp_path):
    from PIL import Image

    a = rng.integers(0, 256, (64, 96), dtype=np.uint8)  # the cut lands in the scan data
    buf = bytes_io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 3 // 4])
    with pytest.raises(io.ImageError, match="cut.jpg: "):
        io.read_image(tmp_path / "cut.jpg")
    got = io.read_image(tmp_path / "cut.jpg", accept_damaged=True)
    assert got.shape == a.shape and got.dtype == np.uint8
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(io.ImageError, match="empty file"):  # undecodable stays an error
        io.read_image(tmp_path / "empty.png", accept_damaged=True)
