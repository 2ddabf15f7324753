"""The corpora and the question sets the benchmark runs on.

- ``lbp``: the embedded corpus (``corpus/``), as shipped.
- ``pubmedqa``: the PubMedQA PQA-L abstracts (``../shared/benchmarks/pubmedqa/ori_pqal.json``),
  as a BEIR folder written by ``assistant.evaluation.pubmedqa`` (or, if that module is unavailable, by
  joining each entry's CONTEXTS here), optionally cut to the first ``n`` abstracts.

Questions: every question of ``datasets/lbp-dev/answers/*.jsonl`` (in scope, ordinary,
out of scope, red flags: the mix the assistant sees) with its mode, each in a few
paraphrase variants so that the query-embedding cache is not all that is measured; PubMedQA
questions for the PubMedQA corpus.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT

LBP_CORPUS = REPO_ROOT / "corpus"
LBP_ANSWERS = REPO_ROOT / "datasets" / "lbp-dev" / "answers"
PUBMEDQA_JSON = REPO_ROOT.parent / "shared" / "benchmarks" / "pubmedqa" / "ori_pqal.json"

# Wrappers that change the text (so the embedding cache misses) but not what is asked.
VARIANTS = (
    "{q}",
    "Please tell me: {q}",
    "{q} What does the evidence say?",
    "Quick question. {q}",
    "{q} Thanks.",
    "I wonder: {q}",
)


def variants(question: str, n: int, offset: int = 0) -> list[str]:
    """``n`` wordings of ``question`` (templates ``offset`` .. ``offset + n - 1``, cycling)."""
    return [VARIANTS[(offset + i) % len(VARIANTS)].format(q=question) for i in range(n)]


def lbp_questions() -> list[dict[str, str]]:
    """``[{"text", "mode", "kind"}]`` from the answer sets of datasets/lbp-dev (first turns of
    conversations included)."""
    out: list[dict[str, str]] = []
    for path in sorted(LBP_ANSWERS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            text = rec.get("text") or (rec.get("turns") or [""])[0]
            if text:
                out.append({"text": text, "mode": rec.get("mode", "clinician"), "kind": path.stem})
    return out


def question_set(
    base: Iterable[dict[str, str]], per_question: int, offset: int = 0, limit: int | None = None
) -> list[dict[str, str]]:
    """Each base question in ``per_question`` variants (distinct texts only), variant by
    variant so that a ``limit`` keeps the whole mix of questions."""
    base = list(base)
    seen: set[str] = set()
    out = []
    for i in range(per_question):
        for q in base:
            text = variants(q["text"], 1, offset + i)[0]
            if text not in seen:
                seen.add(text)
                out.append({**q, "text": text})
    return out[:limit]


def pubmedqa_entries(limit: int | None = None) -> dict[str, Any]:
    """The first ``limit`` entries of ori_pqal.json (in file order; all when None)."""
    data: dict[str, Any] = json.loads(PUBMEDQA_JSON.read_text(encoding="utf-8"))
    keys = list(data)[:limit] if limit else list(data)
    return {k: data[k] for k in keys}


def write_pubmedqa_beir(out_dir: Path, limit: int | None = None) -> tuple[Path, list[str], str]:
    """Write the (first ``limit``) PubMedQA abstracts as a BEIR folder.

    Returns:
        The folder, the questions of those abstracts, and which converter wrote it.
    """
    entries = pubmedqa_entries(limit)
    out_dir.mkdir(parents=True, exist_ok=True)
    questions = [str(e["QUESTION"]) for e in entries.values()]
    try:
        from assistant.evaluation.beir import write_corpus
        from assistant.evaluation.pubmedqa import pubmedqa_to_beir

        dataset = pubmedqa_to_beir(entries)
        write_corpus(out_dir / "corpus.jsonl", dataset.corpus)
        return out_dir, questions, "assistant.evaluation.pubmedqa"
    except ImportError:  # the converter is not there: join CONTEXTS here
        with (out_dir / "corpus.jsonl").open("w", encoding="utf-8") as fh:
            for pmid, e in entries.items():
                text = " ".join(c.strip() for c in e["CONTEXTS"] if c.strip())
                fh.write(json.dumps({"_id": f"pmid-{pmid}", "title": "", "text": text}) + "\n")
        return out_dir, questions, "benchmarks.workloads"


def index_texts(index_dir: Path) -> list[str]:
    """The texts our index embedded, in row order (the peer indexes exactly these)."""
    from assistant.types import Passage

    with (Path(index_dir) / "passages.jsonl").open(encoding="utf-8") as fh:
        return [Passage.from_dict(json.loads(line)).index_text for line in fh if line.strip()]
