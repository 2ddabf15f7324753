"""Convert PubMedQA (the expert-labelled PQA-L subset) into a BEIR retrieval folder.

Jin et al., "PubMedQA: A Dataset for Biomedical Research Question Answering", EMNLP 2019.
Each of the 1,000 entries of ``ori_pqal.json`` is keyed by PMID and holds a QUESTION and
the abstract without its conclusion as labelled CONTEXTS. As a retrieval task, a question's
one relevant document is its own abstract, searched among all 1,000 abstracts.

Ids: documents are ``pmid-<PMID>`` and queries ``q-<PMID>``, so a query id never equals a
document id (some evaluators silently drop such hits). Output folder::

    corpus.jsonl       1,000 abstracts, CONTEXTS joined by spaces, no title
    queries.jsonl      1,000 questions; metadata: pmid, split, final_decision, long_answer
    qrels/test.tsv     the 500 PMIDs of test_ground_truth.json (the official test split)
    qrels/dev.tsv      the other 500
    qrels/all.tsv      all 1,000
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import FormatError
from assistant.evaluation.beir import write_corpus, write_qrels, write_queries

__all__ = ["BeirDataset", "convert_pubmedqa", "doc_id", "pubmedqa_to_beir", "query_id"]

TEST_IDS_FILE = "test_ground_truth.json"


def doc_id(pmid: str) -> str:
    """Document id of the abstract of ``pmid``."""
    return f"pmid-{pmid}"


def query_id(pmid: str) -> str:
    """Query id of the question asked about ``pmid``."""
    return f"q-{pmid}"


@dataclass(frozen=True)
class BeirDataset:
    """A retrieval dataset in BEIR's dict shapes.

    Attributes:
        corpus: ``[{"_id", "title", "text", "metadata"}]``.
        queries: ``{qid: {"text", "metadata"}}``.
        qrels: ``{split: {qid: {docid: relevance}}}``.
    """

    corpus: list[dict[str, Any]]
    queries: dict[str, dict[str, Any]]
    qrels: dict[str, dict[str, dict[str, int]]]


def _entry_texts(pmid: str, entry: Any, source: str) -> tuple[str, str]:
    """(question, abstract) of one entry, or FormatError naming the PMID."""
    if not isinstance(entry, Mapping):
        raise FormatError(source, None, f"entry {pmid}: expected an object")
    question = entry.get("QUESTION")
    contexts = entry.get("CONTEXTS")
    if not isinstance(question, str) or not question.strip():
        raise FormatError(source, None, f"entry {pmid}: missing QUESTION")
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise FormatError(source, None, f"entry {pmid}: CONTEXTS must be a list of strings")
    abstract = " ".join(c.strip() for c in contexts if c.strip())
    if not abstract:
        raise FormatError(source, None, f"entry {pmid}: empty CONTEXTS")
    return question.strip(), abstract


def pubmedqa_to_beir(
    data: Mapping[str, Any],
    test_pmids: Collection[str] = (),
    source: str = "ori_pqal.json",
) -> BeirDataset:
    """Turn parsed ``ori_pqal.json`` into a BEIR dataset (pure; no I/O).

    Args:
        data: ``{pmid: {"QUESTION", "CONTEXTS", "YEAR"?, "final_decision"?, ...}}``.
        test_pmids: PMIDs of the test split; the others form the dev split.
        source: file name used in error messages.

    Returns:
        The corpus, queries and qrels (splits ``test``, ``dev`` and ``all``; ``test`` and
        ``dev`` are omitted when empty).

    Raises:
        FormatError: on an entry without a question or abstract, or a test PMID that is
            not in ``data``.
    """
    unknown = sorted(set(test_pmids) - set(data))
    if unknown:
        raise FormatError(source, None, f"{len(unknown)} test PMIDs not in the data: {unknown[:5]}")
    test = set(test_pmids)
    corpus: list[dict[str, Any]] = []
    queries: dict[str, dict[str, Any]] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {"test": {}, "dev": {}, "all": {}}
    for pmid in sorted(data, key=lambda p: (len(p), p)):
        entry = data[pmid]
        question, abstract = _entry_texts(pmid, entry, source)
        split = "test" if pmid in test else "dev"
        meta: dict[str, Any] = {"pmid": pmid}
        if entry.get("YEAR"):
            meta["year"] = entry["YEAR"]
        corpus.append({"_id": doc_id(pmid), "title": "", "text": abstract, "metadata": meta})
        queries[query_id(pmid)] = {
            "text": question,
            "metadata": {
                "pmid": pmid,
                "split": split,
                "final_decision": entry.get("final_decision"),
                "long_answer": entry.get("LONG_ANSWER"),
            },
        }
        judgement = {doc_id(pmid): 1}
        qrels[split][query_id(pmid)] = judgement
        qrels["all"][query_id(pmid)] = dict(judgement)
    return BeirDataset(corpus, queries, {s: q for s, q in qrels.items() if q})


def convert_pubmedqa(
    source: str | Path,
    output: str | Path,
    test_ids: str | Path | None = None,
) -> Path:
    """Read ``ori_pqal.json`` and write a BEIR folder.

    Args:
        source: path to ``ori_pqal.json``.
        output: folder to write (created if missing; files are replaced atomically).
        test_ids: ``test_ground_truth.json`` (``{pmid: decision}`` or a list of PMIDs);
            defaults to the file of that name next to ``source`` when it exists.

    Returns:
        The output folder.
    """
    source = Path(source)
    output = Path(output)
    data = _read_json(source)
    if not isinstance(data, dict):
        raise FormatError(source, None, "expected an object keyed by PMID")
    if test_ids is None and (source.parent / TEST_IDS_FILE).is_file():
        test_ids = source.parent / TEST_IDS_FILE
    test_pmids: list[str] = []
    if test_ids is not None:
        raw = _read_json(Path(test_ids))
        if not isinstance(raw, (dict, list)):
            raise FormatError(test_ids, None, "expected an object or a list of PMIDs")
        test_pmids = [str(p) for p in raw]
    dataset = pubmedqa_to_beir(data, test_pmids, source=str(source))
    write_corpus(output / "corpus.jsonl", dataset.corpus)
    write_queries(output / "queries.jsonl", dataset.queries)
    for split, qrels in dataset.qrels.items():
        write_qrels(output / "qrels" / f"{split}.tsv", qrels)
    return output


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc


# --------------------------------------------------------------------------- CLI

CONVERTERS = ("pubmedqa",)


def add_convert_parser(sub: Any) -> None:
    """Register ``convert`` on an argparse subparsers object."""
    p = sub.add_parser(
        "convert",
        help="convert an external benchmark (PubMedQA) to a BEIR folder",
        description="Convert an external benchmark to a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).",
    )
    p.add_argument("format", choices=CONVERTERS, help="source format")
    p.add_argument("source", type=Path, help="source file, e.g. ori_pqal.json")
    p.add_argument("--output", "-o", type=Path, required=True, help="BEIR folder to write")
    p.add_argument(
        "--test-ids",
        type=Path,
        default=None,
        help=f"PMIDs of the test split (default: {TEST_IDS_FILE} next to the source)",
    )
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    """Run ``convert`` from parsed arguments; prints what was written."""
    out = convert_pubmedqa(args.source, args.output, args.test_ids)
    n_docs = sum(1 for _ in (out / "corpus.jsonl").open(encoding="utf-8"))
    splits = sorted(p.stem for p in (out / "qrels").glob("*.tsv"))
    print(f"wrote {out}: {n_docs} documents, qrels {', '.join(splits)}")
    return 0
