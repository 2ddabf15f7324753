"""The driver's last step of a Ray build: Parquet shards in, the index folder out.

The shards hold one row per passage and per sentence in no particular order (see
:mod:`assistant.cluster.stages`). :func:`read_shards` puts them back in corpus order (document,
then row within it), numbers the passages of a document id that occurs more than once in
the corpus on from its earlier passages, drops a sentence such a document already had, and
fills the vector arrays; :func:`assistant.search.build.assemble_index`, the local build's own
last step, makes FAISS, BM25, the manifest and the atomic folder write. The result is the
folder a local build writes for the same documents and settings, with the same passage ids
in the same order.

It reads twice: first the small columns (to order the rows and decide where each goes), then
the vectors, shard by shard, straight into their final rows; vectors over 2 GB go into a
memory-mapped file in the scratch folder rather than into memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from assistant.cluster.stages import PASSAGE
from assistant.types import Passage, passage_id

IN_MEMORY_BYTES = 2 * 2**30


@dataclass
class Assembled:
    """Passages, sentences and their vectors in index order."""

    passages: list[Passage]
    vectors: np.ndarray
    sentences: list[dict[str, Any]]
    sentence_vectors: np.ndarray


def shard_files(uri: str) -> tuple[Any, list[str]]:
    """The filesystem and the sorted Parquet files under ``uri`` (a folder or ``scheme://``)."""
    import pyarrow.fs as pafs

    fs, base = pafs.FileSystem.from_uri(uri if "://" in uri else os.path.abspath(uri))
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    return fs, sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet"))


def _tables(fs: Any, files: list[str], columns: list[str]) -> Iterator[Any]:
    import pyarrow.parquet as pq

    for path in files:
        with fs.open_input_file(path) as fh:
            yield pq.read_table(fh, columns=columns)


def _array(rows: int, dim: int, scratch: Path, name: str) -> np.ndarray:
    if rows * dim * 4 <= IN_MEMORY_BYTES:
        return np.empty((rows, dim), dtype=np.float32)
    scratch.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(scratch / f"{name}.npy", mode="w+", dtype=np.float32, shape=(rows, dim))


def read_shards(uri: str, scratch: Path, log: Callable[[str], None] | None = None) -> Assembled:
    """Passages, sentences and vectors of the shards under ``uri`` in corpus order.

    Args:
        uri: the shards folder (or ``s3://...`` and the like).
        scratch: a local folder for vectors too large for memory.
        log: progress messages.
    """
    import pyarrow.parquet as pq

    fs, files = shard_files(uri)
    if not files:
        raise ValueError(f"no Parquet shards under {uri}")
    with fs.open_input_file(files[0]) as fh:
        dim = int(pq.read_schema(fh).field("vector").type.list_size)
    seqs, ks, kinds, records = [], [], [], []
    for table in _tables(fs, files, ["seq", "k", "kind", "record"]):
        seqs.append(table["seq"].to_numpy())
        ks.append(table["k"].to_numpy())
        kinds.append(table["kind"].to_numpy())
        records.extend(table["record"].to_pylist())
    seq, k, kind = np.concatenate(seqs), np.concatenate(ks), np.concatenate(kinds)
    if log:
        log(f"Assembling {len(seq)} rows from {len(files)} shards ...")
    # Where each shard row goes: its row among the passages or the sentences (-1: dropped).
    to_passage = np.full(len(seq), -1, dtype=np.int64)
    to_sentence = np.full(len(seq), -1, dtype=np.int64)
    passages: list[Passage] = []
    sentences: list[dict[str, Any]] = []
    next_k: dict[str, int] = {}
    renamed: dict[tuple[int, str], str] = {}
    seen: set[tuple[str, str]] = set()
    for row in np.lexsort((k, seq)):
        record = json.loads(records[row])
        if kind[row] == PASSAGE:
            p = Passage.from_dict(record)
            number = next_k.get(p.doc_id, 0)
            next_k[p.doc_id] = number + 1
            if p.id != (new_id := passage_id(p.doc_id, number)):
                renamed[(int(seq[row]), p.id)] = new_id
                p = replace(p, id=new_id)
            to_passage[row] = len(passages)
            passages.append(p)
        elif (key := (record["doc_id"], record["text"])) not in seen:
            seen.add(key)
            record["passage_id"] = renamed.get((int(seq[row]), record["passage_id"]), record["passage_id"])
            to_sentence[row] = len(sentences)
            sentences.append(record)
    records.clear()
    vectors = _array(len(passages), dim, scratch, "passage-vectors")
    sentence_vectors = _array(len(sentences), dim, scratch, "sentence-vectors")
    offset = 0
    for table in _tables(fs, files, ["vector"]):
        block = np.concatenate([c.flatten().to_numpy() for c in table["vector"].chunks]).reshape(-1, dim)
        rows = slice(offset, offset + len(block))
        for targets, out in ((to_passage[rows], vectors), (to_sentence[rows], sentence_vectors)):
            keep = targets >= 0
            out[targets[keep]] = block[keep]
        offset += len(block)
    return Assembled(passages, vectors, sentences, sentence_vectors)
