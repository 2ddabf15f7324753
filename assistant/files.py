"""Small file helpers shared by the index folder, the ONNX cache and the adapted-model cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

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


def sha256_remembered(path: Path, memo_path: Path) -> str:
    """:func:`sha256_file`, remembered in the JSON file ``memo_path`` by resolved path, size
    and mtime, so a large file that did not change is read once, not at every start."""
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if not isinstance(memo, dict):
        memo = {}
    if identity not in memo:
        memo[identity] = sha256_file(path)
        with contextlib.suppress(OSError):
            write_atomic(memo_path, (json.dumps(memo, indent=1, sort_keys=True) + "\n").encode())
    return str(memo[identity])


def link_or_copy_tree(source: Path, target: Path) -> None:
    """``target`` as a copy of the folder ``source``: hard links where the file system
    allows (the files are never modified in place), else copies."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)
