"""Exports of the chat: one answer as plain text with its evidence and references (for the
clipboard), and the whole conversation as Markdown (for download). Pure functions, no Gradio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from assistant.web.cards import group_citations, reference_text
from assistant.web.evidence_table import EVIDENCE_CAPTION, evidence_markdown, evidence_text
from assistant.web.markup import RED_FLAG_TITLE, Turn
from assistant.web.page import APP_TITLE, DISCLAIMER


def answer_with_references(answer: Mapping[str, Any]) -> str:
    """Plain text of one answer (``Answer.to_dict()``), its evidence table (one line per study)
    and its reference list (one line per reference), for the clipboard."""
    parts = [str(answer.get("answer", "")).strip()]
    rows = answer.get("evidence") or ()
    if rows:
        parts.append(f"{EVIDENCE_CAPTION}\n{evidence_text(rows)}")
    groups = group_citations(answer.get("citations", ()))
    if groups:
        refs = "\n".join(f"{g[0]['n']}. {reference_text(g[0], markdown=False)}" for g in groups)
        parts.append(f"References\n{refs}")
    return "\n\n".join(parts)


def conversation_markdown(conversation: Sequence[Turn], now: datetime | None = None) -> str:
    """The whole conversation as Markdown: each question, answer, evidence table and reference list."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {APP_TITLE}", "", f"Conversation exported {stamp}. {DISCLAIMER}", ""]
    for i, turn in enumerate(conversation, 1):
        answer = turn["answer"]
        lines += [f"## {i}. {' '.join(str(turn['question']).split())}", ""]
        lines += [f"*Mode: {turn.get('mode', answer.get('mode', ''))}*", ""]
        if answer.get("red_flag"):
            lines += [f"> **{RED_FLAG_TITLE}**", ""]
        lines += [str(answer.get("answer", "")).strip(), ""]
        table = evidence_markdown(answer.get("evidence") or ())
        if table:
            lines += [f"**{EVIDENCE_CAPTION}**", "", *table, ""]
        citations = answer.get("citations", ())
        if citations:
            lines += ["**References**", ""]
            for group in group_citations(citations):
                lines.append(f"{group[0]['n']}. {reference_text(group[0])}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
