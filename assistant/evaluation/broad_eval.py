"""Synthesis metrics over broad questions (``datasets/lbp-dev/answers/broad.jsonl``).

Each broad question has graded relevance over several studies (2: essential, 1: relevant)
and key facts tied to references. Per answer:

- essential-study citation recall: share of the grade-2 references the answer cites;
- key-fact recall: share of the facts stated, a fact counting when one quoted sentence
  that cites one of its references contains, for every term group of the fact, one of the
  group's alternatives (case-insensitive substrings);
- citation precision: share of the cited references with a grade of 1 or more;
- repeated sentences: pairs of quoted sentences in one answer that are the same sentence
  or share four fifths of their words;
- words per answer, and the Flesch-Kincaid grade of patient answers.

Metrics are reported per split (``dev``, ``test``) and per mode, averaged over questions.
"""

from __future__ import annotations

import contextlib
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BROAD_FILE = "broad.jsonl"
_WORDS = re.compile(r"[a-z0-9]+")
NEAR_REPEAT = 0.8


def fact_stated(fact: Mapping[str, Any], sentences: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a quoted sentence citing one of ``fact["refs"]`` matches all its term groups
    (:meth:`assistant.answers.precedents.Fact.stated_in`, the test the bank of precedents uses)."""
    from assistant.answers.precedents import Fact

    refs = set(fact["refs"])
    stated = Fact(tuple(refs), tuple(tuple(group) for group in fact["match"]))
    return any(refs & set(s.get("refs") or ()) and stated.stated_in(str(s.get("text", ""))) for s in sentences)


def repeated_pairs(sentences: Sequence[Mapping[str, Any]]) -> int:
    """Pairs of sentences that are the same or share :data:`NEAR_REPEAT` of their words (Jaccard)."""
    bags = [set(_WORDS.findall(str(s.get("source") or s.get("text", "")).lower())) for s in sentences]
    count = 0
    for i in range(len(bags)):
        for j in range(i + 1, len(bags)):
            union = bags[i] | bags[j]
            if union and len(bags[i] & bags[j]) / len(union) >= NEAR_REPEAT:
                count += 1
    return count


def score_answer(answer: Any, item: Mapping[str, Any]) -> dict[str, float]:
    """The per-answer measures of one broad question (see the module docstring)."""
    from assistant.answers.patient import readability_grade, word_count

    relevance = {int(k): int(v) for k, v in item["relevance"].items()}
    essential = {n for n, g in relevance.items() if g >= 2}
    cited = {c.n for c in answer.citations}
    facts = item.get("facts") or []
    out = {
        "essential_recall": len(cited & essential) / len(essential) if essential else 1.0,
        "citation_precision": len([n for n in cited if relevance.get(n, 0) >= 1]) / len(cited) if cited else 0.0,
        "repeated_sentences": float(repeated_pairs(answer.sentences)),
        "words": float(word_count(answer.answer)),
        "cited_studies": float(len(cited)),
        "abstained": float(answer.abstained),
    }
    if facts:
        out["key_fact_recall"] = sum(fact_stated(f, answer.sentences) for f in facts) / len(facts)
    if answer.mode == "patient":
        out["grade"] = readability_grade(answer.answer)
    return out


def evaluate_broad(
    bot: Any, dataset: Path, splits: Sequence[str] = ("dev", "test"), progress: bool = False
) -> dict[str, Any]:
    """Ask every broad question of ``splits`` (with its history) and average the measures.

    A dev question is asked with its batch left out of the bank of precedents, and, when the
    dataset is the bank, with a selector trained without its batch
    (:func:`assistant.evaluation.selector_training.nested_selectors`): neither has seen it.

    Returns:
        ``{"metrics": {split: {mode: {measure: value}}}, "answers": [per-question rows]}``.
    """
    from assistant.answers.precedents import group_of
    from assistant.evaluation.selector_training import ask_item, nested_selectors
    from assistant.files import read_jsonl

    path = dataset / BROAD_FILE
    if not path.is_file():
        return {"metrics": {}, "answers": []}
    items = [item for item in read_jsonl(path) if item.get("split", "dev") in splits]
    answerer: Any = getattr(bot, "answerer", None)
    gatherer: Any = getattr(answerer, "gatherer", None)
    shipped = getattr(gatherer, "selector", None) if answerer is not None and answerer.precedents is not None else None
    nested: dict[str, Any] = {}
    bank = answerer.settings.precedents_path if shipped is not None else None
    if bank is not None and bank.resolve() == path.resolve() and any(i.get("split", "dev") == "dev" for i in items):
        # the shipped selector was trained on the dev questions: each batch is asked with one
        # trained without it (as the bank leaves it out of the votes)
        nested = nested_selectors(bot, path, progress)
    rows: list[dict[str, Any]] = []
    try:
        for item in items:
            if nested and item.get("split", "dev") == "dev":
                gatherer.selector = nested.get(group_of(item), shipped)
            answer = ask_item(bot, item)
            scores = score_answer(answer, item)
            rows.append({"_id": item["_id"], "split": item.get("split", "dev"), "mode": item["mode"],
                         "cited": sorted({c.n for c in answer.citations}), **scores})  # fmt: skip
    finally:
        if nested:
            gatherer.selector = shipped
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for split in splits:
        for mode in ("clinician", "patient"):
            group = [r for r in rows if r["split"] == split and r["mode"] == mode]
            if not group:
                continue
            keys = sorted({k for r in group for k, v in r.items() if isinstance(v, float)})
            summary = {k: statistics.mean(r[k] for r in group if k in r) for k in keys}
            summary["questions"] = float(len(group))
            summary["answers_with_repeats"] = float(sum(r["repeated_sentences"] > 0 for r in group))
            if mode == "patient":
                summary["grade_max"] = max(r["grade"] for r in group)
            metrics.setdefault(split, {})[mode] = summary
    return {"metrics": metrics, "answers": rows}


def format_broad(report: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_broad`'s metrics."""
    columns = ("questions", "essential_recall", "key_fact_recall", "citation_precision", "repeated_sentences",
               "words", "cited_studies", "grade", "grade_max")  # fmt: skip
    lines = ["split  mode       " + " ".join(f"{c[:12]:>12}" for c in columns)]
    for split, modes in report.get("metrics", {}).items():
        for mode, m in modes.items():
            cells = [f"{m[c]:12.3f}" if c in m else f"{'':>12}" for c in columns]
            lines.append(f"{split:6} {mode:10} " + " ".join(cells))
    return "\n".join(lines)


def candidate_table(bot: Any, dataset: Path, split: str = "dev") -> str:
    """The candidate studies of every broad question of ``split`` with the features the
    evidence cut uses (rank, relative fused score, best result-sentence similarity, the
    treatments they are about, and the precedents' votes, the question's batch left out of the
    bank), why the cut keeps them (``Study.route``; ``-``: not kept) and their relevance grade."""
    from assistant.answers.conversation import standalone_query
    from assistant.answers.precedents import group_of
    from assistant.answers.questions import split_question
    from assistant.files import read_jsonl
    from assistant.types import Turn

    answerer = bot.answerer
    lines = []
    for item in read_jsonl(dataset / BROAD_FILE):
        if item.get("split", "dev") != split:
            continue
        turns = [Turn("user", h) for h in item.get("history") or []]
        query = standalone_query(
            item["text"], turns, answerer._encode, answerer._needs_context, answerer._thresholds.substitution
        )
        part = split_question(query)[0]
        hits = bot.retriever.search(part, k=40, method="hybrid")
        bank = answerer.precedents  # the votes as the evaluation gets them: the item's batch left out
        with bank.excluding(group_of(item)) if bank is not None else contextlib.nullcontext():
            votes = answerer.votes(query)
        patient = item["mode"] == "patient"
        kept = {s.doc_id: s.route for s in answerer.gatherer.gather(part, hits, patient=patient, votes=votes)}
        lines.append(f"{item['_id']} {item['mode']}: {part}")
        grades = {f"ref-{k}": int(v) for k, v in item["relevance"].items()}
        for s in answerer.gatherer.candidates(part, hits, votes=votes):
            needed = f" needed={votes.needed.get(s.doc_id, 0.0):.2f}" if votes is not None else ""
            relevant = f" relevant={votes.relevant.get(s.doc_id, 0.0):.2f}" if votes is not None else ""
            lines.append(
                f"  {kept.get(s.doc_id, '-'):9} grade={grades.get(s.doc_id, 0)} {s.doc_id:8} "
                f"rank={s.rank:>2} relative={s.relative_score:.2f} similarity={s.top_similarity:.2f} "
                f"level={s.level} about={', '.join(s.facets) or '-'}{needed}{relevant}"
            )
    return "\n".join(lines)
