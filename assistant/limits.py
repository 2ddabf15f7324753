"""The bounds on what callers may send, the same for the REST API, the Gradio endpoints and
the command line. Past a bound the caller gets a clear message (HTTP 400, a Gradio error, or
exit code 2) and the server stays up.

=====================  =========  ==============================================================
bound                  value      what is past it
=====================  =========  ==============================================================
question               10,000     refused (the answerer itself reads the first 2,000 characters
                       chars      of a question and says so in a notice)
history messages       100        refused (the answerer uses the last 50 turns)
history message        20,000     refused
                       chars
history, in total      100,000    refused
                       chars
filter keys            10         refused
filter values per key  20         refused
filter value           100 chars  refused
``k`` of a search      1-50       API and app refuse others; the CLI allows 1-1000 (TREC runs)
feedback comment       2,000      refused
                       chars
request body           256 KB     refused before it is read (REST API and Gradio endpoints)
=====================  =========  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_QUESTION_CHARS = 10_000
MAX_HISTORY_MESSAGES = 100
MAX_MESSAGE_CHARS = 20_000
MAX_HISTORY_CHARS = 100_000
MAX_FILTER_KEYS = 10
MAX_FILTER_VALUES = 20
MAX_FILTER_CHARS = 100
MAX_SEARCH_K = 50
MAX_CLI_K = 1000
MAX_COMMENT_CHARS = 2_000
MAX_BODY_BYTES = 256 * 1024


class LimitError(ValueError):
    """A request past one of the bounds; the message names the field and the bound."""


def check_question(text: str, field: str = "question") -> None:
    if len(text) > MAX_QUESTION_CHARS:
        raise LimitError(f"{field} has {len(text):,} characters; at most {MAX_QUESTION_CHARS:,} are accepted")


def check_history(history: Sequence[Any] | None) -> None:
    """Count and sizes of history messages (their shape is checked where they are read)."""
    if not history:
        return
    if len(history) > MAX_HISTORY_MESSAGES:
        raise LimitError(f"history has {len(history)} messages; at most {MAX_HISTORY_MESSAGES} are accepted")
    total = 0
    for i, message in enumerate(history):
        content = message.get("content") if isinstance(message, Mapping) else None
        size = len(content) if isinstance(content, str) else 0
        if size > MAX_MESSAGE_CHARS:
            raise LimitError(f"history message {i} has {size:,} characters; at most {MAX_MESSAGE_CHARS:,} are accepted")
        total += size
    if total > MAX_HISTORY_CHARS:
        raise LimitError(f"history has {total:,} characters in all; at most {MAX_HISTORY_CHARS:,} are accepted")


def check_filters(filters: Mapping[str, Any] | None) -> None:
    if not filters:
        return
    if len(filters) > MAX_FILTER_KEYS:
        raise LimitError(f"filters has {len(filters)} keys; at most {MAX_FILTER_KEYS} are accepted")
    for key, values in filters.items():
        items = list(values) if isinstance(values, (list, tuple, set, frozenset)) else [values]
        if len(str(key)) > MAX_FILTER_CHARS:
            raise LimitError(f"filter key {str(key)[:40]!r}... is longer than {MAX_FILTER_CHARS} characters")
        if len(items) > MAX_FILTER_VALUES:
            raise LimitError(f"filter {key!r} has {len(items)} values; at most {MAX_FILTER_VALUES} are accepted")
        for value in items:
            if len(str(value)) > MAX_FILTER_CHARS:
                raise LimitError(f"a value of filter {key!r} is longer than {MAX_FILTER_CHARS} characters")


def check_k(k: int, high: int = MAX_SEARCH_K) -> None:
    if not 1 <= k <= high:
        raise LimitError(f"k must be from 1 to {high}, not {k}")


def check_request(
    question: str, history: Sequence[Any] | None = None, filters: Mapping[str, Any] | None = None
) -> None:
    """Every bound of one ``ask``; raises :class:`LimitError` at the first one passed."""
    check_question(question)
    check_history(history)
    check_filters(filters)
