"""Exceptions raised by the package, each naming what went wrong and where."""

from __future__ import annotations

from pathlib import Path


class FormatError(ValueError):
    """A data file (corpus, queries, qrels, run, reprint, bibliography) is malformed.

    Args:
        path: the file (or folder).
        line: 1-based line number, a record label such as ``"record 3"``, or None when
            the problem concerns the whole file.
        message: what is wrong.

    The string form is ``"{path}:{line}: {message}"`` as compilers print it, or
    ``"{path}: {message}"`` without a line.
    """

    def __init__(self, path: str | Path, line: int | str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line in (None, "") else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")

    @property
    def where(self) -> int | str | None:
        """The line number or record label (alias of ``line``)."""
        return self.line


class IndexProblem(RuntimeError):
    """An index folder is missing, corrupt or built with other settings than requested."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
