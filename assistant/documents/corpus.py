"""Read a corpus folder into Documents, hash it, and export it.

Sources:
- an UpToDate-style topic reprint (:mod:`assistant.documents.reprint`);
- a reference-records file (``references.json``: one evidence record per reference;
  :mod:`assistant.documents.records`);
- a BEIR folder (``corpus.jsonl``).

A corpus folder holds one or more reprints (``*.txt``) and optionally ``references.json``.
Reference n becomes document ``ref-<n>``; the topic text becomes document ``topic``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from assistant.documents.records import citation_document, load_reference_records, reference_document
from assistant.documents.reprint import ReferenceEntry, parse_topic_reprint, topic_document
from assistant.errors import FormatError
from assistant.types import TOPIC_DOC_ID, Document, Section

REFERENCES_FILE = "references.json"


def is_beir_folder(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file() or path.name == "corpus.jsonl"


def load_beir_documents(path: str | Path) -> list[Document]:
    """A BEIR ``corpus.jsonl`` (or its folder) -> one single-section document per line."""
    from assistant.documents.beir_corpus import read_corpus

    path = Path(path)
    file = path if path.is_file() else path / "corpus.jsonl"
    docs = []
    for row in read_corpus(file):
        title = str(row.get("title") or "")
        meta = {"title": title, **dict(row.get("metadata") or {})}
        docs.append(
            Document(doc_id=str(row["_id"]), title=title, sections=(Section("body", str(row["text"])),), metadata=meta)
        )
    return docs


def load_corpus(path: str | Path) -> list[Document]:
    """Every document of a corpus folder (reprints + records) or a BEIR folder.

    Args:
        path: a corpus folder, a BEIR folder or ``corpus.jsonl``, or one reprint file.

    Returns:
        Documents in a stable order: ``topic`` first, then ``ref-1`` ... ``ref-N``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus not found: {path}")
    if is_beir_folder(path):
        return load_beir_documents(path)
    files = [path] if path.is_file() else sorted(p for p in path.glob("*.txt"))
    if not files:
        raise FormatError(path, None, "no topic reprint (*.txt) or corpus.jsonl found in this folder")
    documents: list[Document] = []
    citations: dict[int, ReferenceEntry] = {}
    for i, f in enumerate(files):
        topic = parse_topic_reprint(f.read_text(encoding="utf-8"), source=f)
        doc_id = TOPIC_DOC_ID if i == 0 else f"topic-{_slug(topic.title)}"
        documents.append(topic_document(topic, doc_id))
        if i == 0:
            citations = {c.n: c for c in topic.references}
    records_path = (path if path.is_dir() else path.parent) / REFERENCES_FILE
    records = {r["n"]: r for r in load_reference_records(records_path)} if records_path.is_file() else {}
    for n in sorted(set(citations) | set(records)):
        if n in records:
            documents.append(reference_document(records[n], source=str(records_path)))
        else:
            documents.append(citation_document(citations[n], source=str(files[0])))
    return documents


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "untitled"


def corpus_files(path: str | Path) -> list[Path]:
    """The files whose content defines the corpus (for hashing)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / "corpus.jsonl").is_file():
        return [path / "corpus.jsonl"]
    return sorted([*path.glob("*.txt"), *path.glob(REFERENCES_FILE)])


def documents_hash(documents: Iterable[Document]) -> str:
    """Content hash of documents (ids, titles, section texts, metadata)."""
    h = hashlib.sha256()
    for d in documents:
        payload = {
            "id": d.doc_id,
            "title": d.title,
            "sections": [[s.name, s.audience, s.text] for s in d.sections],
            "metadata": d.metadata,
        }
        h.update(json.dumps(payload, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def export_beir(documents: Sequence[Document], out_dir: str | Path) -> Path:
    """Write documents as a BEIR ``corpus.jsonl`` (``_id``, ``title``, ``text``, ``metadata``)."""
    from assistant.documents.beir_corpus import write_corpus

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "_id": d.doc_id,
            "title": d.title,
            "text": d.text,
            "metadata": {k: v for k, v in d.metadata.items() if k in _EXPORT_KEYS},
        }
        for d in documents
    ]
    target = out / "corpus.jsonl"
    write_corpus(target, rows)
    return target


_EXPORT_KEYS = ("n", "pmid", "doi", "year", "study_type", "species", "lbp_phase", "journal", "url")
