"""The learner's files: writing the exercise files (never over a changed one), reading
them back as functions, and turning an error in them into one line that names the
file, the line and the function, followed by the learner's own traceback lines only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import linecache
import re
import traceback
import types
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

import numpy as np

from .spec import EXERCISES, NAMES, PARTS

#: Where `cnn-numpy exercises` remembers what it wrote, to tell a changed file from its own.
MANIFEST = ".cnn-numpy-exercises.json"


def template_text(part: str) -> str:
    """The exercise file `part` as shipped."""
    return resources.files(__package__).joinpath("templates", part).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_exercises(folder: str | Path) -> list[tuple[str, str]]:
    """Write the exercise files into folder (created if needed); returns (file, what
    happened) for each: "written", "unchanged", "updated" (a newer template over a file
    the learner had not changed) or "kept: you changed it".  A file the learner changed
    is never overwritten.  ValueError if folder is a file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder for the exercise files")
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    try:
        written = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        written = {}
    done = []
    for part in PARTS:
        text, path = template_text(part), folder / part
        if not path.exists():
            what = "written"
        else:
            current = path.read_bytes().decode("utf-8", errors="replace")
            if current == text:
                what = "unchanged"
            elif written.get(part) == _digest(current):
                what = "updated"
            else:
                done.append((part, "kept: you changed it"))
                continue
        if what != "unchanged":
            path.write_text(text, encoding="utf-8")
        written[part] = _digest(text)
        done.append((part, what))
    manifest_path.write_text(json.dumps({"files": written}, indent=1), encoding="utf-8")
    return done


class LearnerError(ValueError):
    """An error in the learner's code: str() is one line naming the file, the line and the
    function; `details` are the learner's own traceback lines."""

    def __init__(self, line: str, details: list[str] | None = None):
        super().__init__(line)
        self.line, self.details = line, list(details or [])


class NotWrittenError(Exception):
    """A learner's function still raises NotImplementedError; `name` is which."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _shown_name(filename: str) -> str:
    """A learner file as messages name it: its file name, or "a notebook cell"."""
    name = Path(filename).name
    return "a notebook cell" if filename.startswith("<") or "ipykernel" in filename else name


def learner_frames(exc: BaseException, files: set[str]) -> list[traceback.FrameSummary]:
    """The frames of exc's traceback that run the learner's code."""
    return [frame for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename in files]


def describe_error(exc: Exception, files: set[str], during: str = "") -> LearnerError:
    """exc, raised somewhere in the learner's code, as a LearnerError: the last learner
    frame in the first line, all of them (and only them) after it."""
    frames = learner_frames(exc, files)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if not frames:
        return LearnerError(f"{what}{during}")
    last = frames[-1]
    where = "at the top of the file" if last.name == "<module>" else f"in {last.name}"
    details = ["Traceback (your code only):"]
    for frame in frames:
        code = frame.line or linecache.getline(frame.filename, frame.lineno or 0).strip()
        details.append(f"  {_shown_name(frame.filename)}, line {frame.lineno}, in {frame.name}")
        if code:
            details.append(f"    {code}")
    return LearnerError(f"{_shown_name(last.filename)}, line {last.lineno}, {where}: {what}"
                        f"{during}", details)


def call_learner(function: Callable, files: set[str], *args: object) -> object:
    """function(*args), with NumPy's overflow, invalid and divide-by-zero raised where they
    happen; NotWrittenError when the learner's function that raised is unwritten,
    LearnerError for any other exception raised in the learner's code."""
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            return function(*args)
    except NotImplementedError as exc:
        frames = learner_frames(exc, files)
        raise NotWrittenError(frames[-1].name if frames else function.__name__) from None
    except Exception as exc:  # any mistake in their code is reported
        raise describe_error(exc, files) from None


@dataclasses.dataclass
class Source:
    """The learner's functions, read from a folder or taken from a mapping (a notebook's
    globals()).

    functions   name -> function, for the exercises found
    problems    file -> why it could not be read (one line), and its details
    files       the file names their code objects carry (to pick their traceback lines)
    label       how messages name the source
    folder      the folder, when there is one
    """

    functions: dict[str, Callable]
    problems: dict[str, LearnerError]
    files: set[str]
    label: str
    folder: Path | None = None

    def where(self, name: str) -> str:
        """'part1_conv.py, line 52': where the function is defined ("" in a notebook)."""
        code = getattr(self.functions[name], "__code__", None)
        if code is None or code.co_filename not in self.files or self.folder is None:
            return ""  # a notebook's cell: the one above the check
        return f"{_shown_name(code.co_filename)}, line {code.co_firstlineno}"


def _enclosing_def(lines: list[str], lineno: int) -> str | None:
    """The name of the function whose body holds line lineno (1-based), if any."""
    for text in reversed(lines[: max(lineno, 1)]):
        match = re.match(r"def\s+(\w+)", text)
        if match:
            return match.group(1)
    return None


def _syntax_error(exc: SyntaxError, part: str, source: str) -> LearnerError:
    lineno = exc.lineno or 0
    function = _enclosing_def(source.splitlines(), lineno)
    where = f", in {function}" if function else ""
    details = []
    if exc.text:
        details.append(f"    {exc.text.strip()}")
        if exc.offset:
            indent = len(exc.text) - len(exc.text.lstrip())
            details.append("    " + " " * max(exc.offset - 1 - indent, 0) + "^")
    return LearnerError(f"{part}, line {lineno}{where}: {type(exc).__name__}: {exc.msg}",
                        details)


def _read_part(path: Path, part: str) -> tuple[dict[str, Callable], LearnerError | None]:
    """The functions defined in one exercise file, or why it cannot be read."""
    if not path.is_file():
        return {}, LearnerError(f"{part} is missing from {path.parent}: `cnn-numpy exercises "
                                f"{path.parent}` writes it again (it keeps your other files)")
    source = path.read_bytes().decode("utf-8", errors="replace")
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:  # IndentationError and TabError are SyntaxErrors too
        return {}, _syntax_error(exc, part, source)
    module = types.ModuleType(f"yours_{path.stem}")
    module.__file__ = str(path)
    linecache.checkcache(str(path))
    try:
        exec(code, module.__dict__)  # the learner's own file, run as a module
    except Exception as exc:
        return {}, describe_error(exc, {str(path)})
    return {name: value for name, value in vars(module).items()
            if callable(value) and getattr(value, "__module__", None) == module.__name__}, None


def read_folder(folder: str | Path) -> Source:
    """The learner's functions from the exercise files in folder.  ValueError if there is
    no such folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of exercise files; write them with "
                         f"`cnn-numpy exercises {folder}`")
    functions: dict[str, Callable] = {}
    problems: dict[str, LearnerError] = {}
    for part in PARTS:
        found, problem = _read_part(folder / part, part)
        if problem is not None:
            problems[part] = problem
        for name, function in found.items():
            # each exercise from its own file; a helper the learner moved is found too
            if name in NAMES and (name not in functions or _home(name) == part):
                functions[name] = function
    files = {str(folder / part) for part in PARTS}
    return Source(functions, problems, files, str(folder), folder)


def _home(name: str) -> str:
    return next(e.file for e in EXERCISES if e.name == name)


def from_mapping(namespace: Mapping[str, object], label: str = "your functions") -> Source:
    """The learner's functions from a mapping such as a notebook's globals()."""
    functions = {name: value for name, value in namespace.items()
                 if name in NAMES and callable(value)}
    files = {code.co_filename for f in functions.values()
             if (code := getattr(f, "__code__", None)) is not None}
    return Source(functions, {}, files, label)


def read_source(source: str | Path | Mapping[str, object]) -> Source:
    """A folder of exercise files, or a mapping of names to functions."""
    if isinstance(source, Mapping):
        return from_mapping(source)
    return read_folder(source)
