"""Answers and the chat: an answer as HTML (paragraphs with ``[n]`` links, the red-flag box,
then its evidence table and notices), the sentence-end prefixes it streams in, the user's
messages, the chat of a whole conversation, and the conversation as the history of the next
question. Pure functions, no Gradio.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from assistant.web.evidence_table import render_evidence_table
from assistant.web.markup import CITE_RE, RED_FLAG_TITLE, Turn, esc, link_citations

_SENTENCE_END_RE = re.compile(r"[.!?](?:[\"')\]]*)(?:\s*\[\d+(?:\s*[,;–-]\s*\d+)*\])*(?=\s|$)")


def _paragraph_html(text: str, turn: int, known: set[int]) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and all(ln.startswith(("- ", "* ", "• ")) for ln in lines):
        items = "".join(f"<li>{link_citations(esc(ln[2:].strip()), turn, known)}</li>" for ln in lines)
        return f"<ul>{items}</ul>"
    rendered = [link_citations(esc(ln), turn, known) for ln in lines]
    if len(lines) > 1 and lines[0].endswith(":") and not CITE_RE.search(lines[0]):
        rendered[0] = f"<strong>{rendered[0]}</strong>"
    return "<p>" + "<br>".join(rendered) + "</p>"


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines (empty ones dropped)."""
    return [p for p in re.split(r"\n\s*\n", text or "") if p.strip()]


def render_answer(answer: Mapping[str, Any], turn: int, text: str | None = None) -> str:
    """HTML of one answer for the chat: paragraphs with ``[n]`` links, red-flag box, then, once
    the whole answer is shown, its evidence table and notices.

    Args:
        answer: ``Answer.to_dict()``.
        turn: 1-based number of the answer in the conversation (links target its cards).
        text: the part of the answer to show (a prefix while streaming); default all of it.
    """
    body = answer.get("answer", "") if text is None else text
    known = {int(c["n"]) for c in answer.get("citations", ())}
    paragraphs = split_paragraphs(body)
    parts: list[str] = []
    if answer.get("red_flag") and paragraphs:
        parts.append(
            '<div class="lbp-red-flag" role="alert">'
            f'<p class="lbp-red-flag-title"><span aria-hidden="true">⚠</span> {esc(RED_FLAG_TITLE)}</p>'
            f"{_paragraph_html(paragraphs[0], turn, known)}</div>"
        )
        paragraphs = paragraphs[1:]
    parts.extend(_paragraph_html(p, turn, known) for p in paragraphs)
    finished = text is None or text == answer.get("answer", "")
    if finished:
        parts.append(render_evidence_table(answer.get("evidence") or (), turn, known))
        for notice in answer.get("notices", ()):
            parts.append(f'<p class="lbp-notice"><span aria-hidden="true">ℹ</span> {esc(notice)}</p>')
    cls = " ".join(
        c
        for c, on in (("lbp-answer", True), ("lbp-abstained", answer.get("abstained")), ("lbp-streaming", not finished))
        if on
    )
    return f'<div class="{cls}">{"".join(parts)}</div>'


def render_user(question: str) -> str:
    """HTML of a user message: the text, escaped, line breaks kept."""
    return "<p>" + "<br>".join(esc(ln) for ln in str(question).splitlines()) + "</p>"


def stream_prefixes(text: str) -> Iterator[str]:
    """Growing prefixes of ``text`` that end at sentence ends (``[n]`` markers kept), then the text."""
    for m in _SENTENCE_END_RE.finditer(text):
        if m.end() < len(text.rstrip()):
            yield text[: m.end()]
    yield text


def chat_messages(conversation: Sequence[Turn]) -> list[dict[str, str]]:
    """The Chatbot value for a conversation: one user and one assistant message per turn."""
    messages: list[dict[str, str]] = []
    for i, turn in enumerate(conversation, 1):
        messages.append({"role": "user", "content": render_user(turn["question"])})
        messages.append({"role": "assistant", "content": render_answer(turn["answer"], i)})
    return messages


def history_for_ask(conversation: Sequence[Turn]) -> list[dict[str, str]]:
    """The ``history`` argument of :meth:`Assistant.ask`: user and assistant messages, in order."""
    history: list[dict[str, str]] = []
    for turn in conversation:
        history.append({"role": "user", "content": str(turn["question"])})
        history.append({"role": "assistant", "content": str(turn["answer"].get("answer", ""))})
    return history
