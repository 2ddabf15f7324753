"""Exceptions raised by the package, each naming what went wrong and where."""

from __future__ import annotations

from pathlib import Path


def printable(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes) written as ``\\udcxx`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class FormatError(ValueError):
    """A data file (corpus, queries, qrels, run, reprint, bibliography) is malformed.

    Args:
        path: the file (or folder).
        line: 1-based line number, a record label such as ``"record 3"``, or None when
            the problem concerns the whole file.
        message: what is wrong.

    The string form is ``"{path}:{line}: {message}"`` as compilers print it, or
    ``"{path}: {message}"`` without a line. Text that cannot be printed as UTF-8 (lone
    surrogates, from bytes that were not UTF-8) is shown as ``\\udcxx`` escapes there, so
    that reporting an error never fails in turn.
    """

    def __init__(self, path: str | Path, line: int | str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line in (None, "") else f"{self.path}:{line}"
        super().__init__(printable(f"{where}: {message}"))

    @property
    def where(self) -> int | str | None:
        """The line number or record label (alias of ``line``)."""
        return self.line


class IndexProblem(RuntimeError):
    """An index folder is missing, corrupt or built with other settings than requested."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
