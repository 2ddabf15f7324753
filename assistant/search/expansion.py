"""Query expansion with a lay vocabulary (``corpus/lay_terms.json``).

Patients say "bad back", "keeps going out" or "cardio"; the evidence says "low back pain",
"recurrent" and "aerobic exercise". Each everyday phrase found in a query adds its
clinical terms to the query; the original words stay. Measured on the dev split of
``datasets/lbp-dev`` (see docs/benchmarks.md), this is what closes most of the gap between
patient and clinician phrasing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from assistant.errors import FormatError

LAY_TERMS_FILE = "lay_terms.json"


@dataclass(frozen=True)
class LayVocabulary:
    """Everyday phrase -> clinical terms, with one compiled pattern per phrase."""

    terms: Mapping[str, str]
    patterns: tuple[tuple[re.Pattern[str], str], ...]

    @classmethod
    def from_mapping(cls, terms: Mapping[str, str]) -> LayVocabulary:
        patterns = tuple(
            (re.compile(rf"(?<![a-z0-9]){re.escape(phrase.lower())}(?![a-z0-9])"), clinical)
            for phrase, clinical in terms.items()
        )
        return cls(dict(terms), patterns)

    def expand(self, query: str) -> str:
        """``query`` followed by the clinical terms of every everyday phrase it contains."""
        low = query.lower()
        extra: list[str] = []
        for pattern, clinical in self.patterns:
            if clinical not in extra and pattern.search(low):
                extra.append(clinical)
        return f"{query} {' '.join(extra)}" if extra else query


EMPTY = LayVocabulary({}, ())


@lru_cache(maxsize=8)
def load_lay_vocabulary(path: str) -> LayVocabulary:
    """Read ``{"terms": {phrase: clinical terms}}``; a missing file gives an empty vocabulary.

    Raises:
        FormatError: the file is not valid JSON or ``terms`` is not an object of strings.
    """
    p = Path(path)
    if not p.is_file():
        return EMPTY
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(p, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    terms = data.get("terms") if isinstance(data, dict) else None
    if not isinstance(terms, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in terms.items()):
        raise FormatError(p, None, "expected {'terms': {phrase: clinical terms, ...}} with string values")
    return LayVocabulary.from_mapping(terms)
