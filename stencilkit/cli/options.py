"""The command line of ``stencilkit run``: a parser per function, with options anywhere.

The parser of each function is generated from its signature and numpydoc; options are accepted
before, between and after the input paths.

``stencilkit run FUNCTION [OPTIONS] INPUT... -o OUTDIR``: the function's name is the first word
that is neither an option nor an option's value, so ``--size 3`` may come before the inputs,
after them, or even before the name; ``--`` ends the options (inputs named like options). Each
of the function's parameters becomes an option whose converter comes from the numpydoc type
(``int or sequence of int`` takes ``3`` or ``3,5``; ``{'a', 'b'}`` takes one of those;
``array_like`` a nested list or a ``.npy``/``.txt`` file), so ``stencilkit run FUNCTION
--help`` lists every parameter with its type, default and description, and a wrong value names
the option and the form it takes (a ``callable``: ``FILE.py:NAME``, a function imported from
the file). ``--kernel FILE.py:NAME`` replaces the function.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .operation import (
    FUNCTIONS,
    FileFunction,
    Operation,
    function,
    kernel_operation,
    module_of,
    probe,
)
from .status import UsageError

# parameters the command sets itself: the image is each 2-D plane, filtered along both axes
_IMAGE = ("input", "a")
_SET_BY_THE_COMMAND = ("axes",)
# parameters with no command-line form (a function from a file holds its own constants)
_NOT_OFFERED = ("extra_arguments", "extra_keywords")
# the filters' ``output`` (an array or a dtype) is the output dtype here: --output is the folder
_OPTION_NAMES = {"output": "--dtype"}
_DEST = "param_"  # the function's parameters in the namespace, apart from the run's options

class _Parser(argparse.ArgumentParser):
    """argparse's parser, with its usage errors as UsageError (one format for every error)."""

    def error(self, message):
        """Raise the problem as a UsageError that points at ``--help``."""
        raise UsageError(f"{message} (see {self.prog} --help)")


EPILOG = "exit status: 0 all done, 1 some inputs failed, 2 usage error, 130 interrupted"


# ----------------------------------------------------------------------- numpydoc to options

def _sections(doc: str) -> dict[str, list[str]]:
    """Numpydoc sections by title (``''`` for the text before the first), as lists of lines."""
    lines = doc.splitlines()
    sections, title, start = {}, "", 0
    for i in range(len(lines) - 1):
        if lines[i].strip() and re.fullmatch(r"-{3,}", lines[i + 1].strip()):
            sections[title] = lines[start:i]
            title, start = lines[i].strip(), i + 2
    sections[title] = lines[start:]
    return sections


def parameter_docs(fn) -> dict[str, tuple[str, str]]:
    """``{name: (type, description)}`` from ``fn``'s numpydoc Parameters section.

    Entries may name several parameters (``output, mode, cval``); a description ``As for
    :func:`other`.`` takes ``other``'s entries (a function of the same module).

    Examples
    --------
    >>> from stencilkit import filters
    >>> parameter_docs(filters.gaussian_filter)["sigma"][0]
    'float or sequence of float'
    """
    docs, shared = {}, {}
    entries = []
    for line in _sections(inspect.getdoc(fn) or "").get("Parameters", []):
        if line and not line[0].isspace():
            names, _, kind = line.partition(" : ")
            entries.append(([n.strip() for n in names.split(",")], kind.strip(), []))
        elif entries and line.strip():
            entries[-1][2].append(line.strip())
    for names, kind, text in entries:
        description = " ".join(text)
        other = re.fullmatch(r"As for :func:`(\w+)`\.?(.*)", description)
        if other:
            shared = parameter_docs(getattr(inspect.getmodule(fn), other.group(1)))
        for name in names:
            if other and name in shared:
                kind_of, text_of = shared[name]
                docs[name] = (kind or kind_of, (text_of + " " + other.group(2).strip()).strip())
            else:
                docs[name] = (kind, description)
    return docs


_WORDS = {"int": ("an integer", "N", ("3", "5")), "float": ("a number", "X", ("1.5", "2")),
          "scalar": ("a number", "X", ("0", "255")), "bool": ("true or false", "BOOL",
                                                              ("true", "false")),
          "str": ("a word", "TEXT", ("x", "y"))}
# types of the Python API that have no command-line spelling (another alternative has one)
_NOT_ON_THE_COMMAND_LINE = ("ndarray", "dask array", "the NumPy function of that name",
                            "callable")


@dataclass(eq=False)  # hashable: argparse looks types up in a registry
class ValueType:
    """A converter from option text to a parameter value, built from a numpydoc type.

    ``scalar`` is one of int, float, scalar, bool, str (or None); ``choices`` the allowed words;
    ``sequence`` allows a comma list (one value per axis); ``array`` a nested list or a file;
    ``dtype`` a NumPy dtype name. ``option`` is the option's spelling, for messages.
    """

    option: str
    scalar: str | None = None
    choices: tuple = ()
    sequence: bool = False
    array: bool = False
    dtype: bool = False
    function: bool = False

    @classmethod
    def parse(cls, type_text: str, option: str) -> ValueType:
        """The ValueType of a numpydoc type such as ``int or sequence of int, optional``."""
        vt = cls(option)
        text = re.sub(r",\s*optional$", "", type_text.strip())
        if text == "callable":  # (a function and nothing else: one from a file)
            vt.function = True
            return vt
        for alt in (a.strip() for a in re.split(r"\s+or\s+", text)):
            seq = re.fullmatch(r"sequence of (\w+)", alt)
            if alt.startswith("{"):
                vt.choices = tuple(re.findall(r"'([^']*)'", alt))
            elif alt in _WORDS:
                vt.scalar = alt
            elif seq and (seq.group(1) in _WORDS or seq.group(1) == "them" and vt.choices):
                vt.sequence = True
                if seq.group(1) != "them":
                    vt.scalar = vt.scalar or seq.group(1)
            elif alt.startswith("array_like"):
                vt.array = True
            elif alt == "dtype":
                vt.dtype = True
            elif alt not in _NOT_ON_THE_COMMAND_LINE:
                raise ValueError(f"{option}: no command-line form for the type {alt!r} "
                                 f"(of {type_text!r}); teach cli.options.ValueType.parse it")
        if not (vt.scalar or vt.choices or vt.array or vt.dtype):
            raise ValueError(f"{option}: no command-line form for {type_text!r}")
        return vt

    @property
    def metavar(self) -> str:
        """The placeholder in ``--help``: ``N[,...]``, ``{a,b}``, ``ARRAY|FILE``."""
        if self.array:
            return "ARRAY|FILE"
        if self.function:
            return "FILE.py:NAME"
        if self.dtype:
            return "DTYPE"
        one = "{" + ",".join(self.choices) + "}" if self.choices else _WORDS[self.scalar][1]
        return f"{one}[,...]" if self.sequence else one

    def _examples(self) -> tuple[str, str]:
        if self.array:
            return "'[[0,1,0],[1,1,1],[0,1,0]]'", "weights.npy"
        if self.function:
            return "my_filters.py:spread", "lib/noise.py:local_std"
        if self.dtype:
            return "int16", "float32"
        if self.choices:
            return self.choices[0], self.choices[-1]
        return _WORDS[self.scalar][2]

    def form(self) -> str:
        """What the option takes, in words, with examples: for messages and ``--help``."""
        a, b = self._examples()
        if self.array:
            what = "a nested list of numbers or a .npy, .txt or .csv file"
        elif self.function:
            what = "a Python function, as the file defining it and its name"
        elif self.dtype:
            what = "a NumPy dtype name"
        else:
            words = []
            if self.choices:
                words.append("one of " + ", ".join(self.choices))
            if self.scalar:
                words.append(_WORDS[self.scalar][0])
            what = " or ".join(words)
            if self.sequence:
                what += " or a comma list of them, one per axis"
                b = f"{a},{b}"
        return f"{what} ({self.option} {a} or {self.option} {b})"

    def __call__(self, text: str):
        """The value of ``text``; argparse turns an ArgumentTypeError into a usage error."""
        try:
            return self._convert(text.strip())
        except (ValueError, TypeError, SyntaxError, OSError):
            raise argparse.ArgumentTypeError(f"expected {self.form()}; got {text!r}") from None

    def _convert(self, text: str):
        if self.array:
            return _array_value(text)
        if self.function:  # (a UsageError, naming what is wrong, passes through argparse)
            return FileFunction.of(text, self.option)
        if self.dtype:
            return np.dtype(text)
        listed = text[:1] in "([" or "," in text
        if listed and self.sequence:
            items = [i.strip().strip("'\"") for i in text.strip("()[]").split(",")]
            values = tuple(self._one(i) for i in items if i)
            if not values:
                raise ValueError("an empty list")
            return values
        return self._one(text)

    def _one(self, text: str):
        if text in self.choices:
            return text
        if self.scalar == "int":
            return int(text)
        if self.scalar == "float":
            return float(text)
        if self.scalar == "scalar":
            try:
                return int(text)
            except ValueError:
                return float(text)
        if self.scalar == "bool" and text.lower() in ("true", "false", "yes", "no", "1", "0"):
            return text.lower() in ("true", "yes", "1")
        if self.scalar == "str":
            return text
        raise ValueError(text)


def _array_value(text: str) -> np.ndarray:
    """A nested list literal, or a ``.npy`` (NumPy) or ``.txt``/``.csv`` (text) file."""
    path = Path(text)
    if path.suffix.lower() in (".npy", ".txt", ".csv", ".tsv"):
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = np.loadtxt(path, delimiter="," if path.suffix.lower() == ".csv" else None,
                             ndmin=1)
    else:
        arr = np.asarray(ast.literal_eval(text))
    if arr.dtype.kind not in "biuf" or arr.size == 0:
        raise ValueError("not a non-empty array of numbers")
    return arr


# --------------------------------------------------------------------------- the run options

@dataclass(frozen=True)
class _Option:
    flags: tuple
    kwargs: dict

    @property
    def takes_value(self) -> bool:
        return self.kwargs.get("action") is None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"give a positive integer; got {text!r}")
    return value


def _chunks(text: str) -> tuple:
    try:
        parts = tuple(int(p) for p in text.strip("()[] ").split(",") if p.strip())
    except ValueError:
        parts = ()
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"give one or two positive integers (--chunks 512 or "
                                         f"--chunks 512,1024); got {text!r}")
    return parts


RUN_OPTIONS = (
    _Option(("-o", "--output"), dict(metavar="OUTDIR", dest="output",
                                     help="output folder (created if needed); required")),
    _Option(("--name",), dict(metavar="PATTERN",
                              help="output file name from {stem}, {name}, {ext}, {index}; the "
                                   "extension chooses the format (default: the input's name "
                                   "and format)")),
    _Option(("--scheduler",), dict(default="threads", metavar="S",
                                   help="threads (default), processes, local (a "
                                        "dask.distributed LocalCluster; prints its dashboard) "
                                        "or tcp://HOST:PORT (a running scheduler)")),
    _Option(("--workers",), dict(type=_positive, metavar="N",
                                 help="parallel workers (default: cores)")),
    _Option(("--gpu",), dict(action="store_true", help="filter on the CUDA GPU")),
    _Option(("--chunks",), dict(type=_chunks, metavar="R[,C]",
                                help="filter each image as a Dask array of these chunks (very "
                                     "large images)")),
    _Option(("--overwrite",), dict(action="store_true",
                                   help="redo every output (default: skip the outputs that the "
                                        "manifest records as complete)")),
    _Option(("--resume",), dict(action="store_false", dest="overwrite",
                                help="skip complete outputs (the default; undoes --overwrite)")),
    _Option(("--strict",), dict(action="store_true",
                                help="stop at the first failed input (default: report it and go "
                                     "on)")),
    _Option(("--accept-damaged",), dict(action="store_true",
                                        help="process readable but damaged files (a PNG/JPEG "
                                             "cut short: the missing part black; TIFF reader "
                                             "warnings) instead of reporting them")),
    _Option(("--max-pixels",), dict(type=_positive, metavar="N",
                                    help="refuse images with more pixels than this (default "
                                         "2**30)")),
    _Option(("-q", "--quiet"), dict(action="store_true", help="no progress display")),
)
_KERNEL = _Option(("--kernel",), dict(metavar="FILE.py:NAME",
                                      help="apply the @stencil kernel NAME defined in FILE.py "
                                           "instead of a library function"))
_HELP = ("-h", "--help")


def _add_run_options(parser: argparse.ArgumentParser, kernel: bool = False) -> None:
    group = parser.add_argument_group("run options")
    for option in RUN_OPTIONS + ((_KERNEL,) if kernel else ()):
        group.add_argument(*option.flags, **option.kwargs)


def _inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="image files, folders or quoted globs ('**' allowed)")


def _summary(fn) -> str:
    return (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")


def _intro(fn) -> str:
    """The docstring before its first section: the summary and what the function does."""
    return "\n".join(_sections(inspect.getdoc(fn) or "")[""]).strip()


EXAMPLES = """examples:
  stencilkit run uniform_filter --size 5 'frames/*.png' -o out
  stencilkit run gaussian_filter --sigma 1.5 --mode nearest scans/ -o smooth --name '{stem}.tif'
  stencilkit run block_reduce 'tiles/**/*.tif' -o half --factor 2 --func median
  stencilkit run --kernel my_kernels.py:sharpen in/ -o out --scheduler local --workers 4
  stencilkit run generic_filter --function my_filters.py:spread --size 5 in/ -o out"""


def general_parser() -> argparse.ArgumentParser:
    """``stencilkit run --help``, and the parser of ``--kernel`` runs."""
    width = max(map(len, FUNCTIONS))
    listing = "\n".join(f"  {n:<{width}}  {_summary(function(n))}" for n in FUNCTIONS)
    p = _Parser(
        prog="stencilkit run", allow_abbrev=False,
        usage="stencilkit run FUNCTION [OPTIONS] INPUT... -o OUTDIR\n"
              "       stencilkit run --kernel FILE.py:NAME [OPTIONS] INPUT... -o OUTDIR",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Apply a filter, a resampling function or your own @stencil kernel to every "
                    "input image and write one output per input. Options may come before or "
                    "after the inputs; `--` ends them.\n\nfunctions (`stencilkit run FUNCTION "
                    "--help` lists each one's options):\n" + listing,
        epilog=EXAMPLES + "\n\n" + EPILOG)
    _inputs(p)
    _add_run_options(p, kernel=True)
    return p


def function_parser(name: str) -> tuple[argparse.ArgumentParser, dict]:
    """The parser of ``stencilkit run NAME`` and ``{parameter: (option, ValueType, required)}``.

    Every parameter of the function but the image and ``axes`` becomes an option; its help is
    the numpydoc description with the type and the default.
    """
    fn = function(name)
    docs = parameter_docs(fn)
    p = _Parser(
        prog=f"stencilkit run {name}", allow_abbrev=False,
        usage=f"stencilkit run {name} [OPTIONS] INPUT... -o OUTDIR",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_plain(_intro(fn)) + "\n\nEach 2-D plane of every input (each channel of a "
                    "colour image, each page of a\nmulti-page TIFF) is filtered on its own.",
        epilog=f"example:\n  stencilkit run {name} {_example_options(name)}'in/*.png' -o out"
               f"\n\n{EPILOG}")
    _inputs(p)
    group = p.add_argument_group(f"{name} options", f"the parameters of stencilkit."
                                 f"{module_of(name)}.{name}")
    params = {}
    for param in inspect.signature(fn).parameters.values():
        if param.name in _IMAGE + _SET_BY_THE_COMMAND + _NOT_OFFERED:
            continue
        option = _OPTION_NAMES.get(param.name, "--" + param.name.replace("_", "-"))
        if param.name not in docs:
            raise ValueError(f"{name}: the parameter {param.name!r} has no numpydoc entry")
        kind, text = docs[param.name]
        text = _plain(text)
        vt = ValueType.parse(kind, option)
        required = param.default is inspect.Parameter.empty
        default = "required" if required else f"default: {_shown(param.default)}"
        kind = re.sub(r",?\s*optional$", "", kind)
        if vt.choices:  # the placeholder lists them
            kind = "one per axis: a comma list" if vt.sequence else ""
        if param.name == "output":
            text = ("The output's dtype, such as int16 or float32 (name the outputs .tif for "
                    "the dtypes that PNG and JPEG cannot hold).")
            kind, default = "", ("default: the function's (np.std's: float64)"
                                 if name == "vectorized_filter" else "default: the input's")
        group.add_argument(option, dest=_DEST + param.name, type=vt, metavar=vt.metavar,
                           default=argparse.SUPPRESS,
                           help=f"{text} [{'; '.join(filter(None, (kind, default)))}]"
                           .replace("%", "%%"))
        params[param.name] = (option, vt, required)
    _add_run_options(p)
    return p, params


def _plain(text: str) -> str:
    """Docstring text for a terminal: no reST markup, no "Default ..." (``--help`` shows it)."""
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", text)
    return re.sub(r"\s*\(?Default:?\s[^.]*\.\)?\s*$", "", text).strip()


def _shown(value) -> str:
    return "none" if value is None else str(value)


def _example_options(name: str) -> str:
    return {"gaussian_filter": "--sigma 2 ", "uniform_filter": "--size 5 ",
            "correlate": "--weights '[[0,1,0],[1,-4,1],[0,1,0]]' ",
            "convolve": "--weights '[[1,2,1],[2,4,2],[1,2,1]]' ", "sobel": "--axis 0 ",
            "prewitt": "--axis 0 ", "minimum_filter": "--size 3 ", "maximum_filter": "--size 3 ",
            "median_filter": "--size 5 ", "rank_filter": "--rank 2 --size 3 ",
            "percentile_filter": "--percentile 90 --size 5 ", "decimate": "--factor 2 ",
            "block_reduce": "--factor 2 --func max ", "pyramid_down": "--levels 2 ",
            "gaussian_laplace": "--sigma 2 --dtype float32 --name '{stem}.tif' ",
            "gaussian_gradient_magnitude": "--sigma 1.5 ", "grey_opening": "--size 5 ",
            "grey_erosion": "--size 3 ", "grey_dilation": "--size 3 ", "grey_closing": "--size 5 ",
            "morphological_gradient": "--size 3 ", "morphological_laplace": "--size 3 "
            "--dtype int16 --name '{stem}.tif' ", "white_tophat": "--size 15 ",
            "black_tophat": "--size 15 ", "binary_erosion": "--iterations 2 ",
            "binary_dilation": "--iterations 2 ", "binary_opening": "--iterations 2 ",
            "binary_closing": "--iterations 2 ",
            "generic_filter": "--function my_filters.py:spread --size 5 ",
            "generic_filter1d": "--function my_filters.py:running_max --filter-size 9 ",
            "vectorized_filter": "--function my_filters.py:local_std --size 7 --dtype float32 "
            "--name '{stem}.tif' "
            }.get(name, "")


# ------------------------------------------------------------------------ finding the function

def _value_flags() -> set:
    return {f for o in RUN_OPTIONS + (_KERNEL,) if o.takes_value for f in o.flags}


def _scan(argv: list) -> tuple[int | None, bool]:
    """(index of the function's name or None, whether --kernel is given).

    Options of the run are known; any other ``--option`` (a function's, given before its name)
    takes one value, as all of them do.
    """
    value_flags = _value_flags()
    switches = {f for o in RUN_OPTIONS if not o.takes_value for f in o.flags} | set(_HELP)
    name_at, kernel, i = None, False, 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            if name_at is None and i + 1 < len(argv):
                name_at = i + 1
            break
        if token.startswith("-") and token != "-":
            flag, eq, _ = token.partition("=")
            kernel = kernel or flag == "--kernel"
            known_switch = flag in switches or not flag.startswith("--")
            i += 1 if eq or known_switch and flag not in value_flags else 2
            continue
        if name_at is None:
            name_at = i
        i += 1
    return name_at, kernel


def _joined(argv: list, value_flags: set) -> tuple[list, list]:
    """(options and operands before ``--``, operands after it).

    ``--flag value`` becomes ``--flag=value``, so that values such as ``-1,0`` stay values
    (argparse would take them for options).
    """
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return out, argv[i + 1:]
        if token in value_flags and i + 1 < len(argv) and argv[i + 1] != "--":
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out, []


def _parse(parser, argv: list, value_flags: set):
    """``parser.parse_known_intermixed_args``, with ``--`` handled here.

    argparse 3.11 drops ``--`` in intermixed parsing, and reads options after it as options.
    """
    head, operands = _joined(argv, value_flags)
    args, extras = parser.parse_known_intermixed_args(head)
    args.inputs = list(args.inputs) + list(operands)
    return args, extras


def _unknown(extras: list) -> list:
    return [e.partition("=")[0] for e in extras if e.startswith("-") and e != "-"]


def parse_run(argv: list) -> tuple[argparse.Namespace, Operation]:
    """Parse the words after ``stencilkit run``: the run's options and the checked Operation.

    Raises UsageError naming the problem; ``--help`` prints and raises SystemExit(0).
    """
    argv = list(argv)
    name_at, kernel = _scan(argv)
    if kernel:
        parser = general_parser()
        args, extras = _parse(parser, argv, _value_flags())
        unknown = _unknown(extras)
        if unknown:
            raise UsageError(f"options {' '.join(unknown)} do not apply to --kernel (a kernel "
                             "carries its own mode and dtypes in its decorator)")
        if extras:
            raise UsageError(f"unrecognized arguments: {' '.join(extras)}")
        _need_output(args)
        return args, kernel_operation(args.kernel)
    if name_at is None:
        if any(t in _HELP for t in argv):
            general_parser().print_help()
            raise SystemExit(0)
        raise UsageError("give the function to apply and the inputs: stencilkit run FUNCTION "
                         "[OPTIONS] INPUT... -o OUTDIR (FUNCTION: one of "
                         f"{', '.join(FUNCTIONS)}), or --kernel FILE.py:NAME; see "
                         "stencilkit run --help")
    name = argv[name_at]
    if name not in FUNCTIONS:
        close = difflib.get_close_matches(name, FUNCTIONS, n=1)
        raise UsageError(f"unknown filter {name!r}"
                         + (f" (did you mean {close[0]}?)" if close else "")
                         + f"; choose one of {', '.join(FUNCTIONS)}, or --kernel FILE.py:NAME")
    rest = argv[:name_at] + argv[name_at + 1:]
    if argv[name_at - 1:name_at] == ["--"]:  # `run -- NAME ...`: the rest are all inputs
        rest = argv[:name_at - 1] + ["--"] + argv[name_at + 1:]
    parser, params = function_parser(name)
    flags = _value_flags() | {option for option, _, _ in params.values()}
    args, extras = _parse(parser, rest, flags)
    unknown = _unknown(extras)
    if unknown:
        options = [option for option, _, _ in params.values()]
        close = difflib.get_close_matches(unknown[0], options, n=1)
        raise UsageError(f"{name} has no option {unknown[0]}"
                         + (f" (did you mean {close[0]}?)" if close else "")
                         + f"; its options are {', '.join(options) or 'none'} (see "
                         f"stencilkit run {name} --help)")
    if extras:
        raise UsageError(f"unrecognized arguments: {' '.join(extras)}")
    for param, (option, vt, required) in params.items():
        if required and not hasattr(args, _DEST + param):
            raise UsageError(f"{name} needs {option}: {vt.form()}")
    _need_output(args)
    values = {param: getattr(args, _DEST + param) for param in params
              if hasattr(args, _DEST + param)}
    options = {param: option for param, (option, _, _) in params.items()}
    return args, probe(Operation(name=name, params=values), options)


def _need_output(args) -> None:
    if args.output is None:
        raise UsageError("give the output folder: -o OUTDIR")
