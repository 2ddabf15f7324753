"""Small file helpers shared by the index folder, the ONNX cache and the adapted-model cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_memo(memo_path: Path) -> dict[str, str]:
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _write_memo(memo_path: Path, memo: dict[str, str]) -> None:
    """Write ``memo``, dropping entries of files that no longer exist."""
    memo = {k: v for k, v in memo.items() if os.path.exists(k.rsplit("|", 2)[0])}
    with contextlib.suppress(OSError):
        write_atomic(memo_path, (json.dumps(memo, indent=1, sort_keys=True) + "\n").encode())


def sha256_remembered(path: Path, memo_path: Path) -> str:
    """:func:`sha256_file`, remembered in the JSON file ``memo_path`` by resolved path, size
    and mtime, so a large file that did not change is read once, not at every start."""
    identity = _identity(path)
    memo = _read_memo(memo_path)
    if identity not in memo:
        memo[identity] = sha256_file(path)
        _write_memo(memo_path, memo)
    return str(memo[identity])


def remember_sha256(paths: dict[Path, str], memo_path: Path) -> None:
    """Record known checksums (``{path: sha256}``) for :func:`sha256_remembered`, e.g. of
    files just written, so that their first load does not read them again."""
    if paths:
        memo = _read_memo(memo_path)
        memo.update({_identity(p): digest for p, digest in paths.items()})
        _write_memo(memo_path, memo)


def link_or_copy_tree(source: Path, target: Path) -> None:
    """``target`` as a copy of the folder ``source``: hard links where the file system
    allows (the files are never modified in place), else copies."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, blank lines skipped; a bad line raises
    :class:`~assistant.errors.FormatError` naming the file and line."""
    from assistant.errors import FormatError

    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(path, i, f"invalid JSON: {exc.msg}") from exc
