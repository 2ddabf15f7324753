"""What every piece of the web rendering shares: escaping, one-line and shortened text, the
ids of the source cards and the ``[n]`` links to them, the red-flag title, and the shape of a
conversation turn. Pure functions, no Gradio.

Everything that came from a user or from the corpus is HTML-escaped first; the only markup
in the output is what the rendering modules add themselves (paragraphs, ``[n]`` links to the
source cards, the evidence table, badges, ``<mark>`` around quoted sentences).

A *conversation* is the list of turns the app keeps per browser session, each a dict::

    {"question": str, "mode": str, "filters": dict, "answer": Answer.to_dict()}
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

Turn = Mapping[str, Any]

RED_FLAG_TITLE = "Urgent: get medical help"

CITE_RE = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")


def esc(text: Any) -> str:
    """HTML-escape any value (``None`` becomes empty)."""
    return html.escape("" if text is None else str(text), quote=True)


def card_id(turn: int, n: int) -> str:
    """The element id of source card ``n`` of answer ``turn`` (both 1-based)."""
    return f"src-{turn}-{n}"


def cite_link(turn: int, n: int, text: str) -> str:
    """A link from ``text`` (already escaped) to source card ``n`` of answer ``turn``."""
    return f'<a class="lbp-cite" href="#{card_id(turn, n)}" title="Source {n}">{text}</a>'


def link_citations(escaped: str, turn: int, known: set[int]) -> str:
    """Turn ``[3]`` and ``[1, 4]`` in already-escaped text into links to the source cards."""

    def link(n: int, text: str) -> str:
        return cite_link(turn, n, text)

    def repl(m: re.Match[str]) -> str:
        inner = m.group(1)
        numbers = [int(x) for x in re.findall(r"\d+", inner)]
        if not any(n in known for n in numbers):
            return m.group(0)
        if len(numbers) == 1:
            return link(numbers[0], m.group(0))
        linked = re.sub(
            r"\d+", lambda d: link(int(d.group(0)), d.group(0)) if int(d.group(0)) in known else d.group(0), inner
        )
        return f"[{linked}]"

    return CITE_RE.sub(repl, escaped)


def shorten(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to at most ``limit`` characters (at a word end where one is
    near) and ending in an ellipsis when cut."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def one_line(text: Any) -> str:
    """Any value as text on one line: runs of whitespace become one space (``None`` is empty)."""
    return " ".join(str(text or "").split())
