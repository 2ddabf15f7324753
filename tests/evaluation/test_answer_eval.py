"""Answer-level evaluation on a small slice of the answer sets."""

from __future__ import annotations

import json
from pathlib import Path

from assistant.evaluation.answer_eval import DEFAULT_ANSWER_SETS, evaluate_answers
from assistant.files import read_jsonl


def test_small_answer_evaluation(bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name, n in [("in_scope", 6), ("out_of_scope", 4), ("red_flags", 3), ("ordinary", 3), ("conversations", 2),
                    ("red_flags_heldout", 2), ("ordinary_heldout", 2)]:  # fmt: skip
        rows = list(read_jsonl(DEFAULT_ANSWER_SETS / f"{name}.jsonl"))[:n]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = evaluate_answers(bot, tmp_path)
    m = report["metrics"]
    assert m["in_scope_questions"] == 6
    assert m["verbatim_sentence_share"] == 1.0
    assert m["out_of_scope_abstained"] == 1.0
    assert m["red_flag_recall"] == 1.0 and m["red_flag_first"] == 1.0 and m["false_alarm_rate"] == 0.0
    assert m["red_flag_recall_heldout"] == 1.0 and m["false_alarm_rate_heldout"] == 0.0
    assert 0.0 < m["citation_precision"] <= 1.0 and 0.0 < m["citation_recall"] <= 1.0
    assert m["grade_patient_mean"] <= 8.0
    assert m["answers"] == 6 * 2 + 4 + 3 * 2 + 3 + 2 * 2 + 2 + 2
    assert m["latency_ms_p50"] > 0
