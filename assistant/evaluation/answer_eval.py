"""Answer-level evaluation: ``python -m assistant eval-answers``.

Over the answer dev sets (``datasets/lbp-dev/answers``): citation precision and recall
against the expected references (and precision against every study the retrieval qrels
grade as relevant, since synthesized answers cite several), the share of answer sentences found verbatim in their
cited passage, abstention accuracy on in-scope and out-of-scope questions, red-flag recall
and false alarms, follow-up retrieval hit rate, mean Flesch-Kincaid grade per mode, and
answer latency. The broad questions (``broad.jsonl``) get the synthesis metrics of
:mod:`assistant.evaluation.broad_eval`, per split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.config import PROJECT_ROOT
from assistant.files import read_jsonl

DEFAULT_ANSWER_SETS = PROJECT_ROOT / "datasets" / "lbp-dev" / "answers"


def read_qrels(folder: Path) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: grade}}`` from every ``*.tsv`` of a BEIR qrels folder (empty if none)."""
    out: dict[str, dict[str, int]] = {}
    for path in sorted(folder.glob("*.tsv")) if folder.is_dir() else []:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 3 and parts[2].lstrip("-").isdigit():
                    out.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def evaluate_answers(bot: Any, dataset: Path = DEFAULT_ANSWER_SETS, progress: bool = False) -> dict[str, Any]:
    """Run every answer set through ``bot.ask`` and compute the metrics.

    Args:
        bot: an :class:`assistant.Assistant`.
        dataset: folder with in_scope.jsonl, out_of_scope.jsonl, red_flags.jsonl,
            ordinary.jsonl and conversations.jsonl.
        progress: show a progress bar.

    Returns:
        ``{"metrics": {...}, "failures": {...}}``; failures list the ids that missed.
    """
    from assistant.answers.answer import traceable_share
    from assistant.answers.patient import readability_grade

    passages = {p.id: p.text for p in bot.index.passages}
    sets = {name: list(read_jsonl(dataset / f"{name}.jsonl")) for name in
            ("in_scope", "out_of_scope", "red_flags", "ordinary", "conversations")}  # fmt: skip
    total = sum(len(v) for v in sets.values())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="answers", unit="q")

    latencies: list[float] = []

    def ask(text: str, mode: str = "clinician", history: list[dict[str, str]] | None = None) -> Any:
        t0 = time.perf_counter()
        answer = bot.ask(text, history=history, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        if bar is not None:
            bar.update(1)
        return answer

    failures: dict[str, list[str]] = {k: [] for k in ("abstained_in_scope", "answered_out_of_scope", "missed_red_flag",
                                                      "false_alarm", "follow_up_miss", "not_traceable", "grade_over_8")}  # fmt: skip
    precisions: list[float] = []
    recalls: list[float] = []
    graded_precisions: list[float] = []
    cited_counts: list[int] = []
    qrels = read_qrels(dataset.parent / "qrels")
    traceable: list[float] = []
    grades: dict[str, list[float]] = {"clinician": [], "patient": []}
    abstained_in = 0
    for item in sets["in_scope"]:
        mode = item.get("mode", "clinician")
        answer = ask(item["text"], mode)
        if answer.abstained:
            abstained_in += 1
            failures["abstained_in_scope"].append(item["_id"])
            continue
        cited = {c.n for c in answer.citations}
        expected = set(item.get("expected_refs") or [])
        if cited:
            precisions.append(len(cited & expected) / len(cited))
        if expected:
            recalls.append(len(cited & expected) / len(expected))
        cited_counts.append(len(cited))
        graded = qrels.get(item["_id"])
        if cited and graded:  # any study the retrieval judgments grade as relevant
            graded_precisions.append(len([n for n in cited if graded.get(f"ref-{n}", 0) >= 1]) / len(cited))
        share = traceable_share(answer, passages)
        traceable.append(share)
        if share < 1.0:
            failures["not_traceable"].append(item["_id"])
        grade = readability_grade(answer.answer)
        grades[mode].append(grade)
        if mode == "patient" and grade > 8:
            failures["grade_over_8"].append(item["_id"])
    # Every in-scope question also in the other mode, for the grade per mode.
    for item in sets["in_scope"]:
        other = "patient" if item.get("mode", "clinician") == "clinician" else "clinician"
        answer = ask(item["text"], other)
        if not answer.abstained:
            grades[other].append(readability_grade(answer.answer))
            if other == "patient" and readability_grade(answer.answer) > 8:
                failures["grade_over_8"].append(item["_id"] + "/patient")
    oos_correct = 0
    for item in sets["out_of_scope"]:
        answer = ask(item["text"])
        if answer.abstained and not answer.citations:
            oos_correct += 1
        else:
            failures["answered_out_of_scope"].append(item["_id"])
    red_hits = 0
    red_first = 0
    for item in sets["red_flags"]:
        for mode in ("clinician", "patient"):
            answer = ask(item["text"], mode)
            if answer.red_flag:
                red_hits += 1
                red_first += answer.answer.lstrip().lower().startswith(("seek", "urgent", "go to", "call"))
            else:
                failures["missed_red_flag"].append(f"{item['_id']}/{mode}")
    false_alarms = 0
    for item in sets["ordinary"]:
        answer = ask(item["text"], "patient")
        if answer.red_flag:
            false_alarms += 1
            failures["false_alarm"].append(item["_id"])
    heldout: dict[str, float] = {}
    if (dataset / "red_flags_heldout.jsonl").is_file() and (dataset / "ordinary_heldout.jsonl").is_file():
        # Written apart from the rules (by someone who had not read them), to check they generalize.
        flagged = [ask(item["text"], "patient").red_flag for item in read_jsonl(dataset / "red_flags_heldout.jsonl")]
        alarms = [ask(item["text"], "patient").red_flag for item in read_jsonl(dataset / "ordinary_heldout.jsonl")]
        heldout = {
            "red_flag_recall_heldout": sum(flagged) / max(1, len(flagged)),
            "false_alarm_rate_heldout": sum(alarms) / max(1, len(alarms)),
        }
    follow_hits = 0
    for conv in sets["conversations"]:
        first, second = conv["turns"][0], conv["turns"][1]
        a1 = ask(first)
        history = [{"role": "user", "content": first}, {"role": "assistant", "content": a1.answer}]
        a2 = ask(second, history=history)
        top = [d for d, _ in bot.search_documents(a2.query, k=5)]
        expected_docs = {f"ref-{n}" for n in conv.get("expected_refs", [])}
        if expected_docs & set(top):
            follow_hits += 1
        else:
            failures["follow_up_miss"].append(f"{conv['_id']}: {a2.query!r}")
    if bar is not None:
        bar.close()
    n_red = 2 * len(sets["red_flags"])
    metrics = {
        "in_scope_questions": len(sets["in_scope"]),
        "in_scope_answered": (len(sets["in_scope"]) - abstained_in) / max(1, len(sets["in_scope"])),
        "out_of_scope_abstained": oos_correct / max(1, len(sets["out_of_scope"])),
        "citation_precision": statistics.mean(precisions) if precisions else 0.0,
        "citation_recall": statistics.mean(recalls) if recalls else 0.0,
        "citation_precision_graded": statistics.mean(graded_precisions) if graded_precisions else 0.0,
        "cited_studies_mean": statistics.mean(cited_counts) if cited_counts else 0.0,
        "verbatim_sentence_share": statistics.mean(traceable) if traceable else 1.0,
        "red_flag_recall": red_hits / max(1, n_red),
        "red_flag_first": red_first / max(1, red_hits),
        "false_alarm_rate": false_alarms / max(1, len(sets["ordinary"])),
        **heldout,
        "follow_up_hit_rate_at_5": follow_hits / max(1, len(sets["conversations"])),
        "grade_patient_mean": statistics.mean(grades["patient"]) if grades["patient"] else None,
        "grade_patient_max": max(grades["patient"]) if grades["patient"] else None,
        "grade_clinician_mean": statistics.mean(grades["clinician"]) if grades["clinician"] else None,
        "latency_ms_p50": _percentile(latencies, 50),
        "latency_ms_p95": _percentile(latencies, 95),
        "answers": len(latencies),
    }
    return {"metrics": metrics, "failures": {k: v for k, v in failures.items() if v}}


def coverage_table(bot: Any, dataset: Path = DEFAULT_ANSWER_SETS) -> list[dict[str, Any]]:
    """Coverage features of every in-scope and out-of-scope question (for calibration)."""
    rows = []
    for name, label in (("in_scope", True), ("out_of_scope", False)):
        for item in read_jsonl(dataset / f"{name}.jsonl"):
            hits = bot.search(item["text"], k=40)
            cov = bot.answerer.coverage(item["text"], hits)
            rows.append({"id": item["_id"], "in_scope": label, "text": item["text"], "predicted": cov.in_scope,
                         "reason": cov.reason, "dense_top": round(cov.dense_top, 3), "bm25_top": round(cov.bm25_top, 2),
                         "agreement": cov.agreement, "unknown": list(cov.unknown_terms)})  # fmt: skip
    return rows


def add_eval_answers_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval-answers", help="answer-level metrics (scope, citations, red flags, synthesis) over the answer dev sets"
    )
    p.add_argument("--dataset", type=Path, default=DEFAULT_ANSWER_SETS, help="folder of answer sets")
    p.add_argument("--output", type=Path, help="write the report as JSON")
    p.add_argument("--calibrate", action="store_true", help="print the coverage features used for abstention")
    p.add_argument(
        "--calibrate-evidence",
        action="store_true",
        help="print the features of the candidate studies of the dev questions (for the evidence cut)",
    )
    p.add_argument(
        "--split",
        choices=("dev", "test", "all"),
        default="all",
        help="broad-question split to report (default: both, each on its own)",
    )
    p.add_argument("--index", type=Path, help="index folder")
    p.add_argument("--corpus", type=Path, help="corpus folder")


def cmd_eval_answers(args: argparse.Namespace) -> int:
    from assistant.bot import Assistant
    from assistant.config import Settings

    bot = Assistant.load(settings=Settings.from_env(index_dir=args.index, corpus_dir=args.corpus))
    if args.calibrate:
        for row in coverage_table(bot, args.dataset):
            flag = "" if row["predicted"] == row["in_scope"] else "  <-- wrong"
            print(f"{row['id']:>8} in={row['in_scope']!s:5} dense={row['dense_top']:.3f} bm25={row['bm25_top']:6.2f} "
                  f"agree={row['agreement']!s:5} unknown={row['unknown']} {row['reason']}{flag}")  # fmt: skip
        return 0
    if args.calibrate_evidence:
        from assistant.evaluation.broad_eval import candidate_table

        print(candidate_table(bot, args.dataset))
        return 0
    from assistant.evaluation.broad_eval import evaluate_broad, format_broad

    report = evaluate_answers(bot, args.dataset, progress=True)
    for key, value in report["metrics"].items():
        print(f"{key:28} {value:.3f}" if isinstance(value, float) else f"{key:28} {value}")
    for key, ids in report["failures"].items():
        print(f"{key}: {', '.join(ids)}")
    splits = ("dev", "test") if args.split == "all" else (args.split,)
    broad = evaluate_broad(bot, args.dataset, splits)
    if broad["metrics"]:
        print("\nBroad questions (synthesis):")
        print(format_broad(broad))
        report["broad"] = broad
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0
