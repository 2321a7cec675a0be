"""The optional parts of cnn-numpy (its extras: plots, torch, onnx, web): importing one,
or a MissingExtraError that names the extra to install.  The command line turns that
error into one line on stderr and exit code 2; any other ImportError is a bug and keeps
its traceback."""

from __future__ import annotations

import importlib
import types


class MissingExtraError(ImportError):
    """An optional package is not installed; the message says which extra installs it."""


def require(module: str, extra: str, needed_for: str | None = None,
            package: str | None = None) -> types.ModuleType:
    """import `module`, or a MissingExtraError naming the extra (`needed_for`: what asked
    for it, said first; `package`: the name it is installed by, where it is not the
    module's)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there, and something it imports is not: say so as is
        name = package or module
        if needed_for is None:
            raise MissingExtraError(f"{name} is not installed; install it with "
                                    f'pip install "cnn-numpy[{extra}]"') from None
        raise MissingExtraError(f"{needed_for} needs {name}, which is not installed; "
                                f'pip install "cnn-numpy[{extra}]"') from None
