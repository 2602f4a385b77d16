"""The `stencilkit` command end to end: the installed console script in a subprocess, on real
PNG and TIFF files, against scipy.ndimage; bad files, write faults, kill -9 and resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from filter_table import exact_mean

from stencilkit import io

scipy_ndimage = pytest.importorskip("scipy.ndimage")
pytest.importorskip("PIL")
pytest.importorskip("tifffile")

pytestmark = pytest.mark.slow

EXE = shutil.which("stencilkit", path=os.path.dirname(sys.executable)) or shutil.which(
    "stencilkit")


def cli(*args, check=None, env=None, **kw):
    if EXE is None:
        pytest.skip("the stencilkit console script is not installed (pip install -e .)")
    out = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})}, **kw)
    if check is not None:
        assert out.returncode == check, out.stdout + out.stderr
    return out


def main(*args, capsys):
    """The command in this process (for checks that need no process of their own)."""
    from stencilkit.cli import main as cli_main

    rc = cli_main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out.out, out.err)


def frames(n, shape=(40, 52), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, (n, *shape), dtype=dtype, endpoint=True)


def write_inputs(folder, stack, ext=".png", prefix="img"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(stack):
        io.write_image(f, folder / f"{prefix}{i}{ext}")


def outputs(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_filters_on_png_and_tiff_equal_scipy(tmp_path):
    grey = frames(3)
    rgb = frames(2, (30, 20, 3), seed=1)
    pages = frames(1, (3, 25, 33), np.uint16, seed=2)[0]
    write_inputs(tmp_path / "in", grey)
    write_inputs(tmp_path / "in", rgb, prefix="rgb")
    io.write_image(pages, tmp_path / "in" / "pages.tif")
    out = cli("run", "uniform_filter", "--size", "5", "--mode", "nearest", tmp_path / "in", "-o",
              tmp_path / "out", check=0)
    assert "done: 6 written, 0 already complete, 0 failed" in out.stdout

    def ref(x):  # stencilkit's integer rule: the exact mean, ties to even (scipy truncates)
        sums = scipy_ndimage.correlate(x.astype(np.int64), np.ones((5, 5), np.int64),
                                       mode="nearest")
        return exact_mean(sums, 25, x.dtype)

    for i, f in enumerate(grey):
        np.testing.assert_array_equal(io.read_image(tmp_path / "out" / f"img{i}.png"), ref(f))
    got = io.read_image(tmp_path / "out" / "rgb0.png")
    assert got.shape == rgb[0].shape
    for c in range(3):  # channels filtered one by one, never across
        np.testing.assert_array_equal(got[..., c], ref(rgb[0][..., c]))
    got = io.read_image(tmp_path / "out" / "pages.tif")
    assert got.dtype == np.uint16 and got.shape == pages.shape
    for p in range(3):  # pages too
        np.testing.assert_array_equal(got[p], ref(pages[p]))


def test_exact_reference_for_float_tiffs_and_resampling(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((33, 41)).astype(np.float32)
    (tmp_path / "in").mkdir()
    io.write_image(a, tmp_path / "in" / "a.tif")
    cli("run", "gaussian_filter", "--sigma", "1.5", tmp_path / "in", "-o", tmp_path / "g",
        check=0)
    np.testing.assert_allclose(io.read_image(tmp_path / "g" / "a.tif"),
                               scipy_ndimage.gaussian_filter(a, 1.5), rtol=1e-5, atol=1e-6)
    cli("run", "block_reduce", tmp_path / "in", "-o", tmp_path / "b", "--factor", "2",
        "--func", "max", "--name", "{stem}_half.tif", check=0)
    want = a[:32, :40].reshape(16, 2, 20, 2).max(axis=(1, 3))
    got = io.read_image(tmp_path / "b" / "a_half.tif")
    assert got.shape == (17, 21)
    np.testing.assert_array_equal(got[:16, :20], want)


def test_user_kernel_from_a_file(tmp_path):
    (tmp_path / "k.py").write_text(
        "import stencilkit as sk\n\n"
        "@sk.stencil(mode='wrap')\n"
        "def east(x):\n"
        "    return x[0, 1]\n")
    write_inputs(tmp_path / "in", frames(2))
    cli("run", "--kernel", f"{tmp_path / 'k.py'}:east", tmp_path / "in", "-o", tmp_path / "o",
        "--name", "{stem}.out.png", check=0)
    assert outputs(tmp_path / "o") == ["img0.out.png", "img1.out.png"]
    np.testing.assert_array_equal(io.read_image(tmp_path / "o" / "img1.out.png"),
                                  np.roll(frames(2)[1], -1, axis=1))


FUNCTIONS_PY = """
def spread(values):
    lo = values[0]
    hi = values[0]
    for v in values:
        lo = min(lo, v)
        hi = max(hi, v)
    return (hi - lo) * {scale}


def running_max(line, result):
    for i in range(result.size):
        m = line[i]
        for j in range(1, 5):
            m = max(m, line[i + j])
        result[i] = m


TABLE = 3


def local_std(windows, axis):  # (vectorized_filter's: windows along ``axis``)
    import numpy as np

    return np.std(windows, axis=axis)


def second(input, axis, output, mode, cval):  # (generic_laplace's derivative)
    from stencilkit import filters

    return filters.correlate1d(input, [1, -2, 1], axis, output, mode, cval)
"""


def test_generic_filters_of_a_function_from_a_file(tmp_path, capsys):
    """generic_filter and generic_filter1d with --function FILE.py:NAME, in this process and
    in worker processes (the function travels as its file's name); an edited file redoes the
    outputs (the manifest holds its digest); a bad reference is a usage error; vectorized_filter
    and generic_laplace take their functions the same way."""
    import scipy.ndimage as ndi

    f = tmp_path / "my_filters.py"
    f.write_text(FUNCTIONS_PY.format(scale=0.5))
    write_inputs(tmp_path / "in", frames(3))
    a = frames(3)[2]

    def spread(values, scale=0.5):
        return (values.max() - values.min()) * scale

    got = main("run", "generic_filter", "--function", f"{f}:spread", "--size", "3,5",
               tmp_path / "in", "-o", tmp_path / "g", "-q", capsys=capsys)
    assert got.returncode == 0, got.stderr
    want = ndi.generic_filter(a, spread, size=(3, 5), output=np.float64)
    np.testing.assert_array_equal(io.read_image(tmp_path / "g" / "img2.png"),
                                  np.rint(want).astype(np.uint8))
    out = cli("run", "generic_filter1d", "--function", f"{f}:running_max", "--filter-size", "5",
              "--axis", "0", "--mode", "wrap", tmp_path / "in", "-o", tmp_path / "g1",
              "--scheduler", "processes", "--workers", "2", check=0)
    assert "done: 3 written" in out.stdout
    np.testing.assert_array_equal(io.read_image(tmp_path / "g1" / "img2.png"),
                                  ndi.maximum_filter1d(a, 5, axis=0, mode="wrap"))
    run = ("run", "generic_filter", "--function", f"{f}:spread", "--size", "3,5",
           tmp_path / "in", "-o", tmp_path / "g")
    assert "3 of 3 outputs are already complete" in main(*run, capsys=capsys).stdout
    f.write_text(FUNCTIONS_PY.format(scale=0.25))
    assert "done: 3 written, 0 already complete" in main(*run, capsys=capsys).stdout
    np.testing.assert_array_equal(io.read_image(tmp_path / "g" / "img2.png"), np.rint(
        ndi.generic_filter(a, spread, size=(3, 5), output=np.float64, extra_arguments=(0.25,))
    ).astype(np.uint8))
    for ref, message in ((f"{tmp_path / 'none.py'}:spread", "no such file"),
                         (f"{f}:nothing", "has no 'nothing'"),
                         (f"{f}:TABLE", "'TABLE' is a int, not a function"),
                         (str(f), "give it as path/to/file.py:name")):
        got = main("run", "generic_filter", "--function", ref, "--size", "3",
                   tmp_path / "in", "-o", tmp_path / "x", capsys=capsys)
        assert got.returncode == 2 and message in got.stderr, (message, got.stderr)
    got = main("run", "generic_filter", "--size", "3", tmp_path / "in", "-o", tmp_path / "x",
               capsys=capsys)
    assert got.returncode == 2 and "generic_filter needs --function" in got.stderr
    # vectorized_filter: the function's float64 values into float32 TIFFs; the valid windows
    got = main("run", "vectorized_filter", "--function", f"{f}:local_std", "--size", "3,5",
               "--dtype", "float32", "--name", "{stem}.tif", tmp_path / "in", "-o",
               tmp_path / "v", "-q", capsys=capsys)
    assert got.returncode == 0, got.stderr
    np.testing.assert_array_equal(io.read_image(tmp_path / "v" / "img2.tif"), ndi.vectorized_filter(
        a, np.std, size=(3, 5)).astype(np.float32))
    got = main("run", "vectorized_filter", "--function", f"{f}:local_std", "--size", "3",
               "--mode", "valid", "--dtype", "uint8", tmp_path / "in", "-o", tmp_path / "vv",
               "-q", capsys=capsys)
    assert got.returncode == 0, got.stderr
    np.testing.assert_array_equal(io.read_image(tmp_path / "vv" / "img2.png"), np.rint(
        ndi.vectorized_filter(a, np.std, size=3, mode="valid")).astype(np.uint8))
    # generic_laplace with --derivative2 (the 1-D second differences: scipy's laplace)
    got = main("run", "generic_laplace", "--derivative2", f"{f}:second", "--dtype", "int16",
               "--name", "{stem}.tif", tmp_path / "in", "-o", tmp_path / "l", "-q",
               capsys=capsys)
    assert got.returncode == 0, got.stderr
    np.testing.assert_array_equal(io.read_image(tmp_path / "l" / "img2.tif"),
                                  ndi.laplace(a.astype(np.int16)))


def test_resume_skips_complete_outputs_and_redoes_changed_ones(tmp_path):
    write_inputs(tmp_path / "in", frames(4))
    cli("run", "maximum_filter", tmp_path / "in", "-o", tmp_path / "o", "--size", "3", check=0)
    out = cli("run", "maximum_filter", tmp_path / "in", "-o", tmp_path / "o", "--size", "3",
              check=0)
    assert "4 of 4 outputs are already complete" in out.stdout
    # a changed input, a damaged output, and different parameters are redone
    io.write_image(frames(1, seed=9)[0], tmp_path / "in" / "img1.png")
    (tmp_path / "o" / "img2.png").write_bytes(b"garbage")
    out = cli("run", "maximum_filter", tmp_path / "in", "-o", tmp_path / "o", "--size", "3",
              check=0)
    assert "2 of 4 outputs are already complete" in out.stdout
    np.testing.assert_array_equal(io.read_image(tmp_path / "o" / "img2.png"),
                                  scipy_ndimage.maximum_filter(frames(4)[2], 3))
    out = cli("run", "maximum_filter", tmp_path / "in", "-o", tmp_path / "o", "--size", "5",
              check=0)
    assert "outputs are already complete" not in out.stdout and "done: 4 written" in out.stdout


def test_usage_errors_exit_2_before_any_work(tmp_path, capsys):
    write_inputs(tmp_path / "in", frames(2))
    (tmp_path / "in" / "img0.tif").write_bytes((tmp_path / "in" / "img0.png").read_bytes())
    (tmp_path / "file").write_text("x")
    cases = [
        (["run", "blur", tmp_path / "in", "-o", tmp_path / "o"], "unknown filter 'blur'"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", "--sigma", "2"],
         "uniform_filter has no option --sigma"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", "--size", "-1"],
         "size must be >= 0"),
        (["run", "uniform_filter", str(tmp_path / "nothing*.png"), "-o", tmp_path / "o"],
         "no file matches this pattern"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "file" / "o"],
         "cannot create or write it"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", "--name",
          "{stem}.png"], "would be written twice, e.g. img0.png"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "in", "--name",
          "{stem}.out.tif"], "would land among the inputs"),
        (["run", "uniform_filter", str(tmp_path / "**" / "*.png"), "-o", tmp_path / "in" / "o"],
         "would land among the inputs"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "in"],
         "would overwrite its input"),
        (["run", "--kernel", "nofile.py:k", tmp_path / "in", "-o", tmp_path / "o"],
         "no such file nofile.py"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", "--name", "{x}.png"],
         "--name '{x}.png'"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", "--workers", "0"],
         "argument --workers: give a positive integer; got '0'"),
        (["run", "gaussian_filter", tmp_path / "in", "-o", tmp_path / "o"],
         "gaussian_filter needs --sigma: a number or a comma list of them, one per axis "
         "(--sigma 1.5 or --sigma 1.5,2)"),
        (["run", "uniform_filter", "--size", "3x3", tmp_path / "in", "-o", tmp_path / "o"],
         "argument --size: expected an integer or a comma list of them, one per axis (--size 3 "
         "or --size 3,5); got '3x3'"),
        (["run", "uniform_filter", "--mode", "wrp", tmp_path / "in", "-o", tmp_path / "o"],
         "argument --mode: expected one of reflect, constant, nearest, mirror, wrap or a comma"),
        (["run", "uniform_filter", "--sise", "3", tmp_path / "in", "-o", tmp_path / "o"],
         "uniform_filter has no option --sise (did you mean --size?)"),
        (["run", "unifrom_filter", tmp_path / "in", "-o", tmp_path / "o"],
         "unknown filter 'unifrom_filter' (did you mean uniform_filter?)"),
        (["run", "uniform_filter", "--size", "3", tmp_path / "in"],
         "give the output folder: -o OUTDIR"),
        (["run", "uniform_filter", "--size", "3", "-o", tmp_path / "o"],
         "no input files given"),
        (["run", "--size", "3", "-o", tmp_path / "o"], "give the function to apply"),
        (["run", "sobel", "--dtype", "int16", tmp_path / "in", "-o", tmp_path / "o"],
         "--dtype int16 with .png names: PNG cannot hold int16"),
        (["run", "correlate", "--weights", "[[1, 2], [3]]", tmp_path / "in", "-o", tmp_path / "o"],
         "argument --weights: expected a nested list of numbers or a .npy, .txt or .csv file"),
        (["run", "median_filter", "--size", "0", tmp_path / "in", "-o", tmp_path / "o"],
         "(from --size 0)"),
        (["run", "--kernel", "k.py:x", "--size", "3", tmp_path / "in", "-o", tmp_path / "o"],
         "options --size do not apply to --kernel"),
        (["run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", "--name", "--"],
         "argument --name: expected one argument"),
    ]
    for args, message in cases:
        out = main(*args, capsys=capsys)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr, (message, out.stderr)
    assert not (tmp_path / "o").exists() or outputs(tmp_path / "o") == []
    assert cli("run", "--help").returncode == 0  # the console script itself
    assert "exit status" in main("run", "--help", capsys=capsys).stdout


def test_options_anywhere_give_byte_identical_outputs(tmp_path, capsys):
    write_inputs(tmp_path / "in", frames(3))
    inputs = [tmp_path / "in" / f"img{i}.png" for i in range(3)]
    opts = ["--size", "5,3", "--mode", "wrap,nearest", "--origin=-1,0"]
    orders = {
        "natural": ["uniform_filter", *opts, *inputs, "-o", "{out}"],
        "after": ["uniform_filter", *inputs, "-o", "{out}", *opts],
        "between": ["uniform_filter", inputs[0], *opts[:2], inputs[1], "-o", "{out}", inputs[2],
                    *opts[2:]],
        "before the name": [*opts, "-o", "{out}", "uniform_filter", *inputs],
        "after --": ["uniform_filter", *opts, "-o", "{out}", "--", *inputs],
        "separate values": ["uniform_filter", "--size", "5,3", "--mode", "wrap,nearest",
                            "--origin", "-1,0", "-q", *inputs, "-o", "{out}"],
    }
    for key, args in orders.items():
        out = tmp_path / key.replace(" ", "_")
        got = main("run", *[str(a).replace("{out}", str(out)) for a in args], capsys=capsys)
        assert got.returncode == 0, (key, got.stderr)
        assert outputs(out) == ["img0.png", "img1.png", "img2.png"], key
    want = scipy_ndimage.uniform_filter(frames(3)[1].astype(np.float64), (5, 3),
                                        mode=("wrap", "nearest"), origin=(-1, 0))
    np.testing.assert_allclose(io.read_image(tmp_path / "natural" / "img1.png"), want, atol=0.5)
    for key in orders:
        for i in range(3):
            assert ((tmp_path / key.replace(" ", "_") / f"img{i}.png").read_bytes()
                    == (tmp_path / "natural" / f"img{i}.png").read_bytes()), key
    # `--` ends the options: what follows is an input even when it looks like one
    weird = tmp_path / "in" / "--size.png"
    weird.write_bytes(inputs[0].read_bytes())
    got = main("run", "maximum_filter", "-o", tmp_path / "w", "--size", "3", "--", weird,
               capsys=capsys)
    assert got.returncode == 0 and outputs(tmp_path / "w") == ["--size.png"]


def test_help_for_each_function_lists_every_parameter(capsys):
    import inspect
    import re

    from stencilkit.cli.operation import FUNCTIONS, function
    from stencilkit.cli.options import parameter_docs

    general = main("run", "--help", capsys=capsys)
    assert general.returncode == 0 and "exit status" in general.stdout
    for name in FUNCTIONS:
        assert f"  {name} " in general.stdout
        for args in (("run", name, "--help"), ("run", "-h", name), ("run", "-o", "x", name, "-h")):
            got = main(*args, capsys=capsys)
            assert got.returncode == 0, (args, got.stderr)
            text = " ".join(got.stdout.split())  # argparse wraps the help
            assert f"usage: stencilkit run {name} [OPTIONS] INPUT... -o OUTDIR" in text
            docs = parameter_docs(function(name))
            params = [p for p in inspect.signature(function(name)).parameters.values()
                      if p.name not in ("input", "a", "axes", "extra_arguments",
                                        "extra_keywords")]  # (a function's file holds those)
            for param in params:
                option = "--dtype" if param.name == "output" else "--" + param.name.replace(
                    "_", "-")
                assert f"{option} " in text, (name, option)
                if param.name != "output":  # its description is the command's own
                    desc = re.sub(r":func:`(\w+)`", r"\1", docs[param.name][1])
                    words = desc.replace("``", "").split("Default")[0].split()[:4]
                    assert " ".join(words) in text, (name, param.name, words)
            required = [p for p in params if p.default is inspect.Parameter.empty]
            assert text.count("required]") == len(required), name
            assert "run options:" in text and "-o OUTDIR, --output OUTDIR" in text
    # and the console script itself
    assert "--truncate X" in cli("run", "gaussian_filter", "--help", check=0).stdout


def test_option_values_from_numpydoc_types():
    import argparse

    from stencilkit.cli.options import ValueType

    size = ValueType.parse("int or sequence of int, optional", "--size")
    assert size("3") == 3 and size("3,5") == (3, 5) and size("(3, 5)") == (3, 5)
    assert size("[7]") == (7,) and size("-1,0") == (-1, 0)
    sigma = ValueType.parse("float or sequence of float", "--sigma")
    assert sigma("1.5") == 1.5 and sigma("0.5,2") == (0.5, 2.0)
    cval = ValueType.parse("scalar, optional", "--cval")
    assert cval("7") == 7 and type(cval("7")) is int and cval("-0.5") == -0.5
    assert np.isnan(cval("nan"))
    mode = ValueType.parse("{'reflect', 'wrap'} or sequence of them, optional", "--mode")
    assert mode("wrap") == "wrap" and mode("wrap,reflect") == ("wrap", "reflect")
    func = ValueType.parse("{'mean', 'max'} or the NumPy function of that name", "--func")
    assert func("max") == "max" and func.metavar == "{mean,max}"
    dtype = ValueType.parse("ndarray or dtype, optional", "--dtype")
    assert dtype("int16") == np.int16
    weights = ValueType.parse("array_like", "--weights")
    np.testing.assert_array_equal(weights("[[0, 1], [2, 3]]"), [[0, 1], [2, 3]])
    for vt, bad in ((size, "3.5"), (size, "3,x"), (size, ","), (sigma, "wide"),
                    (mode, "wrp"), (mode, "wrap,wrp"), (func, "mean,max"), (dtype, "int17"),
                    (weights, "[[1, 2], [3]]"), (weights, "'text'"), (weights, "missing.npy"),
                    (cval, "x")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"{vt.option} .*; got"):
            vt(bad)
    with pytest.raises(ValueError, match="no command-line form for the type 'list of things'"):
        ValueType.parse("callable or list of things", "--what")


def test_weights_and_footprints_from_files(tmp_path, capsys):
    write_inputs(tmp_path / "in", frames(2))
    w = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.save(tmp_path / "w.npy", w)
    np.savetxt(tmp_path / "w.csv", w, delimiter=",")
    for k, arg in enumerate((tmp_path / "w.npy", tmp_path / "w.csv", "[[0,1,0],[1,-4,1],[0,1,0]]")):
        got = main("run", "correlate", "--weights", arg, "--dtype", "int16", tmp_path / "in",
                   "-o", tmp_path / f"out{k}", "--name", "{stem}.tif", "-q", capsys=capsys)
        assert got.returncode == 0, got.stderr
        want = scipy_ndimage.correlate(frames(2)[1].astype(np.int16), w)
        np.testing.assert_array_equal(io.read_image(tmp_path / f"out{k}" / "img1.tif"), want)
    fp = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    np.save(tmp_path / "fp.npy", fp)
    got = main("run", "median_filter", "--footprint", tmp_path / "fp.npy", tmp_path / "in", "-o",
               tmp_path / "m", capsys=capsys)
    assert got.returncode == 0, got.stderr
    np.testing.assert_array_equal(io.read_image(tmp_path / "m" / "img0.png"),
                                  scipy_ndimage.median_filter(frames(2)[0], footprint=fp))
    # a required parameter of the filter (rank, percentile) is a required option
    got = main("run", "rank_filter", "--rank", "-2", "--footprint", tmp_path / "fp.npy",
               tmp_path / "in", "-o", tmp_path / "r", capsys=capsys)
    assert got.returncode == 0, got.stderr
    np.testing.assert_array_equal(io.read_image(tmp_path / "r" / "img1.png"),
                                  scipy_ndimage.rank_filter(frames(2)[1], -2, footprint=fp))
    got = main("run", "percentile_filter", "--size", "3", tmp_path / "in", "-o",
               tmp_path / "p", capsys=capsys)
    assert got.returncode == 2 and "--percentile" in got.stderr



def test_morphology_on_images_equals_scipy(tmp_path, capsys):
    """The morphology functions as commands: grey (a footprint from a file, a non-flat
    structure), binary (the image's non-zero pixels; a 1-bit PNG, or --dtype uint8)."""
    write_inputs(tmp_path / "in", frames(2))
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    np.save(tmp_path / "cross.npy", cross)
    a = frames(2)[1]
    for args, want in [
            (("grey_opening", "--footprint", tmp_path / "cross.npy"),
             scipy_ndimage.grey_opening(a, footprint=cross)),
            (("grey_erosion", "--structure", "[[0,1,0],[1,2,1],[0,1,0]]", "--dtype", "int16",
              "--name", "{stem}.tif"),  # (scipy in int64: exact, no uint8 wrap below 0)
             scipy_ndimage.grey_erosion(a.astype(np.int64), structure=[[0, 1, 0], [1, 2, 1],
                                                                       [0, 1, 0]])),
            (("binary_erosion", "--iterations", "2", "--border-value", "1"),
             scipy_ndimage.binary_erosion(a > 0, iterations=2, border_value=1)),
            (("binary_closing", "--dtype", "uint8"), scipy_ndimage.binary_closing(a > 0))]:
        got = main("run", *args, tmp_path / "in", "-o", tmp_path / args[0], "-q",
                   capsys=capsys)
        assert got.returncode == 0, got.stderr
        name = "img1.tif" if "--name" in args else "img1.png"
        np.testing.assert_array_equal(io.read_image(tmp_path / args[0] / name),
                                      want.astype(io.read_image(tmp_path / args[0] / name)
                                                  .dtype), err_msg=args[0])

def corrupt_corpus(folder):
    """About 60 damaged files in 5 formats, named by what is wrong with them."""
    import io as bytes_io

    import tifffile
    from PIL import Image

    a = frames(1, (64, 96))[0]
    blobs = {}
    for kind, save in [
        ("png", lambda b: Image.fromarray(a).save(b, "PNG")),
        ("jpg", lambda b: Image.fromarray(a).save(b, "JPEG")),
        ("raw.tif", lambda b: tifffile.imwrite(b, a)),
        ("zlib.tif", lambda b: tifffile.imwrite(b, a, compression="zlib")),
        ("tiled.tif", lambda b: tifffile.imwrite(b, a, tile=(32, 32))),
    ]:
        buf = bytes_io.BytesIO()
        save(buf)
        blobs[kind] = buf.getvalue()
    folder.mkdir(parents=True)
    names = []
    for kind, data in blobs.items():
        stem, _, ext = kind.rpartition(".") if "." in kind else ("", "", kind)
        for cut in (12, 40, 120, *(int(len(data) * f)
                                   for f in (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.99))):
            name = f"trunc{cut}_{stem or ext}.{ext}"
            (folder / name).write_bytes(data[:cut])
            names.append(name)
        flipped = bytearray(data)
        mid = len(flipped) * 2 // 3
        flipped[mid:mid + 64] = bytes(64)  # zeroed bytes inside the compressed data
        if kind in ("png", "zlib.tif"):
            name = f"zeroed_{stem or ext}.{ext}"
            (folder / name).write_bytes(bytes(flipped))
            names.append(name)
    for name, data in [("empty.png", b""), ("empty.tif", b""), ("garbage.png", os.urandom(999)),
                       ("text.jpg", b"hello\n" * 50), ("html.tif", b"<html></html>")]:
        (folder / name).write_bytes(data)
        names.append(name)
    return names


def test_corrupt_corpus_every_file_named_no_partial_output(tmp_path):
    bad = corrupt_corpus(tmp_path / "in")
    write_inputs(tmp_path / "in", frames(3), prefix="good")
    out = cli("run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", check=1)
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    for name in bad:
        assert f"{tmp_path / 'in' / name}:" in out.stdout, name  # each named in the summary
    assert outputs(tmp_path / "o") == ["good0.png", "good1.png", "good2.png"]
    assert f"{len(bad)} failed" in out.stdout and len(bad) >= 55


def test_write_faults_leave_nothing_at_final_paths(tmp_path):
    import resource

    noisy = frames(3, (128, 128))  # ~16 kB PNGs
    write_inputs(tmp_path / "in", noisy, prefix="noisy")
    write_inputs(tmp_path / "in", np.zeros((2, 128, 128), np.uint8), prefix="flat")  # tiny

    def limit():  # the file-size limit of a nearly full disk: writes past 4 kB fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = cli("run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o",
              preexec_fn=limit, check=1)
    assert "3 failed" in out.stdout
    for i in range(3):
        assert f"noisy{i}.png: cannot write" in out.stdout
        assert "File too large" in out.stdout
    assert sorted(os.listdir(tmp_path / "o")) == [".stencilkit-manifest.jsonl", "flat0.png",
                                                  "flat1.png"]


def test_kill_9_then_resume_is_byte_identical(tmp_path):
    stack = frames(120, (192, 192))
    write_inputs(tmp_path / "in", stack)
    cli("run", "gaussian_filter", tmp_path / "in", "-o", tmp_path / "ref", "--sigma", "2",
        "--workers", "1", check=0)
    proc = subprocess.Popen([EXE, "run", "gaussian_filter", tmp_path / "in", "-o",
                             tmp_path / "o", "--sigma", "2", "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "o" / ".stencilkit-manifest.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 10:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = 0  # complete manifest lines (a line cut by the kill does not count)
    for line in manifest.read_text().splitlines():
        try:
            json.loads(line)
            done_before += 1
        except ValueError:
            pass
    assert 10 <= done_before < 120, "the batch was not interrupted midway"
    for name in outputs(tmp_path / "o"):  # whatever is at a final path is complete
        assert (tmp_path / "o" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    out = cli("run", "gaussian_filter", tmp_path / "in", "-o", tmp_path / "o", "--sigma", "2",
              check=0)
    assert f"{done_before} of 120 outputs are already complete" in out.stdout
    assert outputs(tmp_path / "o") == outputs(tmp_path / "ref")
    for name in outputs(tmp_path / "ref"):
        assert (tmp_path / "o" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    assert not [p for p in os.listdir(tmp_path / "o") if io.TEMP_MARK in p]
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    assert {r["output"] for r in records} == set(outputs(tmp_path / "ref"))


# a command run with SIGINT at its default disposition: a process started with it ignored (a
# background job of a non-interactive shell, nohup) passes that on, and Python then installs
# no KeyboardInterrupt handler, so Ctrl-C could not reach the command (as for any program
# started so): the test would depend on how pytest was started
WITH_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.argv[1], sys.argv[1:])")


def test_ctrl_c_stops_cleanly_with_status_130(tmp_path):
    write_inputs(tmp_path / "in", frames(150, (192, 192)))
    proc = subprocess.Popen([sys.executable, "-c", WITH_SIGINT, EXE, "run", "gaussian_filter",
                             tmp_path / "in", "-o", tmp_path / "o", "--sigma", "2",
                             "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = tmp_path / "o" / ".stencilkit-manifest.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (manifest.exists() and manifest.stat().st_size):
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "not started (interrupted)" in stdout
    out = cli("run", "gaussian_filter", tmp_path / "in", "-o", tmp_path / "o", "--sigma", "2",
              check=0)
    assert "already complete" in out.stdout
    assert len(outputs(tmp_path / "o")) == 150


@pytest.mark.parametrize("scheduler", ["processes", "local"])
def test_process_and_local_cluster_schedulers(tmp_path, scheduler):
    if scheduler == "local":
        pytest.importorskip("distributed")
    write_inputs(tmp_path / "in", frames(4))
    out = cli("run", "maximum_filter", tmp_path / "in", "-o", tmp_path / "o", "--size", "3",
              "--scheduler", scheduler, "--workers", "2", check=0)
    if scheduler == "local":
        assert "dashboard" in out.stdout
    for i, f in enumerate(frames(4)):
        np.testing.assert_array_equal(io.read_image(tmp_path / "o" / f"img{i}.png"),
                                      scipy_ndimage.maximum_filter(f, 3))


def scheduler_address(sched_file, proc, wait=60):
    """The address a ``dask scheduler`` wrote to its scheduler file, once the file is whole.

    The scheduler creates the file before it writes the JSON, so a file that exists may
    still be empty or half written: read it until it parses (CI once read it empty).
    """
    deadline = time.time() + wait
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the dask scheduler exited with status {proc.returncode}")
        try:
            return json.loads(sched_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)
    pytest.fail(f"the dask scheduler wrote no address to {sched_file} in {wait} s")


def test_a_running_dask_scheduler_and_worker(tmp_path):
    pytest.importorskip("distributed")
    dask_exe = shutil.which("dask", path=os.path.dirname(sys.executable))
    if dask_exe is None:
        pytest.skip("the dask command is not installed")
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask_exe, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", sched_file],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        address = scheduler_address(sched_file, procs[0])
        procs.append(subprocess.Popen([dask_exe, "worker", address, "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        (tmp_path / "k.py").write_text(
            "import stencilkit as sk\n\n"
            "@sk.stencil(mode='nearest')\n"
            "def dx(x):\n"
            "    return x[0, 1] - x[0, -1]\n")
        write_inputs(tmp_path / "in", frames(3))
        out = cli("run", "--kernel", f"{tmp_path / 'k.py'}:dx", tmp_path / "in", "-o",
                  tmp_path / "o", "--scheduler", address, "--name", "{stem}.tif", check=0)
        assert f"connected to {address}: 1 workers" in out.stdout
        for i, f in enumerate(frames(3)):
            g = f.astype(np.int64)
            want = (np.concatenate([g[:, 1:], g[:, -1:]], 1)
                    - np.concatenate([g[:, :1], g[:, :-1]], 1)).astype(np.uint8)
            np.testing.assert_array_equal(io.read_image(tmp_path / "o" / f"img{i}.tif"), want)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_info_and_demo(tmp_path):
    out = cli("info", check=0)
    assert "numba" in out.stdout and "CUDA:" in out.stdout and "threading layer" in out.stdout
    out = cli("demo", "--frames", "4", "--files", "5", "--size", "64", "--dir", tmp_path,
              check=0)
    assert "frames/s" in out.stdout and "equals filters.uniform_filter on the frame: True" \
        in out.stdout


def test_gpu_flag(tmp_path):
    write_inputs(tmp_path / "in", frames(2))
    sim = {"NUMBA_ENABLE_CUDASIM": "1"}
    cli("run", "sobel", tmp_path / "in", "-o", tmp_path / "g", "--axis", "0", "--gpu",
        env=sim, check=0)
    cli("run", "sobel", tmp_path / "in", "-o", tmp_path / "c", "--axis", "0", check=0)
    for name in outputs(tmp_path / "c"):
        assert (tmp_path / "g" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()
    out = cli("run", "sobel", tmp_path / "in", "-o", tmp_path / "x", "--gpu",
              env={"NUMBA_ENABLE_CUDASIM": "0"})
    assert out.returncode in (0, 2), out.stderr  # 0 on a GPU machine
    if out.returncode == 2:  # no GPU: a usage error saying why, before any file
        assert "--gpu:" in out.stderr and not (tmp_path / "x").exists()


def test_a_worker_process_killed_midway_is_replaced(tmp_path):
    psutil = pytest.importorskip("psutil")
    write_inputs(tmp_path / "in", frames(80, (160, 160)))
    cli("run", "gaussian_filter", tmp_path / "in", "-o", tmp_path / "ref", "--sigma", "2",
        check=0)
    proc = subprocess.Popen([EXE, "run", "gaussian_filter", tmp_path / "in", "-o",
                             tmp_path / "o", "--sigma", "2", "--scheduler", "processes",
                             "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = tmp_path / "o" / ".stencilkit-manifest.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (manifest.exists()
                                          and len(manifest.read_text().splitlines()) >= 3):
        time.sleep(0.005)
    workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
               if "resource_tracker" not in " ".join(c.cmdline())]
    assert workers
    workers[0].kill()  # as the out-of-memory killer would
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stdout + stderr
    assert "a worker process died; running" in stderr
    assert outputs(tmp_path / "o") == outputs(tmp_path / "ref")
    for name in outputs(tmp_path / "ref"):
        assert (tmp_path / "o" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def test_strict_stops_at_the_first_bad_file(tmp_path, capsys):
    write_inputs(tmp_path / "in", frames(30))
    (tmp_path / "in" / "img0.png").write_bytes(b"broken")
    out = main("run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", "--strict",
               "--workers", "1", capsys=capsys)
    assert out.returncode == 1
    assert "stopping at the first failure (--strict)" in out.stderr
    assert len(outputs(tmp_path / "o")) < 29


def test_chunks_give_the_same_bytes(tmp_path, capsys):
    write_inputs(tmp_path / "in", frames(2, (70, 90)))
    for out, extra in (("a", ()), ("b", ("--chunks", "32,40"))):
        assert main("run", "maximum_filter", tmp_path / "in", "-o", tmp_path / out, "--size",
                    "5", *extra, capsys=capsys).returncode == 0
    for name in outputs(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert main("run", "maximum_filter", tmp_path / "in", "-o", tmp_path / "c", "--chunks",
                "0", capsys=capsys).returncode == 2


def test_progress_bar_on_a_terminal_and_lines_in_a_log():
    import io as text_io
    import re

    from stencilkit.cli import Progress, Result

    class Tty(text_io.StringIO):
        def isatty(self):
            return True

    for stream, tty in ((Tty(), True), (text_io.StringIO(), False)):
        p = Progress(3, stream=stream)
        for i in range(3):
            p.update(Result(index=i, ok=i != 1, pixels_bytes=10**6))
            p.line(f"message {i}")
        p.close()
        text = stream.getvalue()
        assert "3/3" in text and "frames/s" in text and "1 failed" in text
        assert re.search(r"\d [kMGT]?B/s", text)  # the pixel rate with a unit that fits it
        assert all(f"message {i}\n" in text for i in range(3))
        assert ("\r" in text) == tty  # a redrawn bar (tqdm) only on a terminal
        assert ("100%|" in text) == tty
    quiet = text_io.StringIO()
    p = Progress(2, stream=quiet, quiet=True)
    p.update(Result(index=0, ok=True))
    p.close()
    assert quiet.getvalue() == ""


def test_summary_units_fit_small_and_large_runs():
    from stencilkit.cli.progress import seconds, si

    assert [si(x, "B/s") for x in (0, 512, 1234, 2.5e7, 3.2e9)] == [
        "0.000 B/s", "512 B/s", "1.23 kB/s", "25.0 MB/s", "3.20 GB/s"]
    assert [seconds(t) for t in (0.0004, 0.5, 12.345, 125, 7300)] == [
        "0.400 ms", "500 ms", "12.3 s", "2 min 05 s", "2 h 01 min"]


def test_bench_table_and_plot_option(capsys):
    # the timing itself is benchmarks' business; here the table's arithmetic and the option
    from stencilkit import bench

    bench.report({1000: {bench.COPY: 1e-4, "stencilkit smooth(x)": 2e-4}})
    rows = [line.split()[-2:] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [["20.00", "1.00"], ["10.00", "0.50"]]  # GB/s read + written, x copy
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        out = cli("bench", "--plot", "x.png", "--sizes", "16")
        assert out.returncode == 2 and "needs matplotlib" in out.stdout


def test_accept_damaged_is_an_explicit_opt_in(tmp_path, capsys):
    import io as bytes_io

    from PIL import Image

    buf = bytes_io.BytesIO()
    Image.fromarray(frames(1, (64, 96))[0]).save(buf, "JPEG")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 3 // 4])
    out = main("run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", capsys=capsys)
    assert out.returncode == 1 and "cut.jpg" in out.stdout
    out = main("run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o",
               "--accept-damaged", capsys=capsys)
    assert out.returncode == 0 and outputs(tmp_path / "o") == ["cut.jpg"]
    out = main("run", "uniform_filter", tmp_path / "in", "-o", tmp_path / "o", capsys=capsys)
    assert out.returncode == 1  # a strict rerun does not take that output as complete
