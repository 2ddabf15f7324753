"""The app's view of the web rendering: what ``app.py`` shows and lays out, and the renderer of
each piece, from one module. It defines nothing; each name lives where its part is made:

- :mod:`.markup`: escaping, the ``[n]`` links to source cards, the shape of a conversation turn;
- :mod:`.render`: answers (streamed by sentence), user messages, the chat, the history for the next question;
- :mod:`.cards`: source cards with highlighted quotes, and the sources panel;
- :mod:`.evidence_table`: an answer's evidence table, in HTML and as export rows;
- :mod:`.exports`: the answer with its references (clipboard) and the conversation as Markdown;
- :mod:`.page`: title, disclaimer, filter choices and the filters they give, CSS, head and button scripts.

All of it is pure functions and constants, no Gradio. Everything that came from a user or from
the corpus is HTML-escaped first.
"""

from __future__ import annotations

from assistant.web.cards import highlight_passage, render_card, render_sources
from assistant.web.evidence_table import render_evidence_table
from assistant.web.exports import answer_with_references, conversation_markdown
from assistant.web.markup import Turn, esc
from assistant.web.page import (
    APP_TITLE,
    COPY_JS,
    CSS,
    DESIGN_CHOICES,
    DISCLAIMER,
    DOWNLOAD_JS,
    HEAD,
    PHASE_CHOICES,
    filters_from_ui,
)
from assistant.web.render import chat_messages, history_for_ask, render_answer, render_user, stream_prefixes

__all__ = [
    "APP_TITLE",
    "COPY_JS",
    "CSS",
    "DESIGN_CHOICES",
    "DISCLAIMER",
    "DOWNLOAD_JS",
    "HEAD",
    "PHASE_CHOICES",
    "Turn",
    "answer_with_references",
    "chat_messages",
    "conversation_markdown",
    "esc",
    "filters_from_ui",
    "highlight_passage",
    "history_for_ask",
    "render_answer",
    "render_card",
    "render_evidence_table",
    "render_sources",
    "render_user",
    "stream_prefixes",
]
