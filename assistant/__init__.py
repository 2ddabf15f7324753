"""Offline conversational retrieval over the evidence on exercise therapy for low back pain.

Public API (imported lazily so that ``python -m assistant`` starts fast)::

    from assistant import Assistant
    bot = Assistant.load()
    hits = bot.search("bed rest or staying active for acute back pain", k=10)
    answer = bot.ask("Is yoga effective for chronic back pain?", mode="patient")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Assistant",
    "Document",
    "Hit",
    "Passage",
    "Settings",
    "__version__",
]

if TYPE_CHECKING:
    from assistant.answers.answer import Answer
    from assistant.bot import Assistant
    from assistant.config import Settings
    from assistant.types import Document, Hit, Passage

_LAZY = {
    "Assistant": "assistant.bot",
    "Answer": "assistant.answers.answer",
    "Settings": "assistant.config",
    "Document": "assistant.types",
    "Passage": "assistant.types",
    "Hit": "assistant.types",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
