"""Exceptions raised by the package, each naming what went wrong and where."""

from __future__ import annotations

from pathlib import Path


class FormatError(ValueError):
    """A data file (corpus, queries, qrels, run, reprint) is malformed.

    Args:
        path: the file (or folder).
        line: 1-based line number, or None when the problem concerns the whole file.
        message: what is wrong.

    The string form is ``"{path}:{line}: {message}"`` as compilers print it, or
    ``"{path}: {message}"`` without a line.
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


class IndexProblem(RuntimeError):
    """An index folder is missing, corrupt or built with other settings than requested."""
