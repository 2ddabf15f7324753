"""Query expansion: a lay vocabulary (``corpus/lay_terms.json``) and abbreviations.

Patients say "bad back", "keeps going out" or "cardio"; the evidence says "low back pain",
"recurrent" and "aerobic exercise". Each everyday phrase found in a query adds its
clinical terms to the query; the original words stay. Measured on the dev split of
``datasets/lbp-dev`` (see docs/benchmarks.md), this is what closes most of the gap between
patient and clinician phrasing.

Clinicians write "FRP", "CLBP" or "tCBT". An abbreviation in a query adds its long form:
the one the indexed texts define ("functional restoration program (FRP)", found with the
rule of Schwartz and Hearst, 2003: every letter of the abbreviation appears, in order, in
the words before the parenthesis, the first at the start of a word), else the one in the
corpus folder's ``abbreviations.json`` (common ones the records do not define, e.g. RMDQ).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
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


def read_terms(path: str, shape: str) -> dict[str, str] | None:
    """The ``terms`` object of a ``{"terms": {key: value}}`` file of strings; None when the
    file is missing.

    Raises:
        FormatError: the file is not valid JSON or ``terms`` is not an object of strings
            (``shape`` names the expected keys and values, "phrase: clinical terms").
    """
    p = Path(path)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(p, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    terms = data.get("terms") if isinstance(data, dict) else None
    if not isinstance(terms, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in terms.items()):
        raise FormatError(p, None, f"expected {{'terms': {{{shape}, ...}}}} with string values")
    return terms


@lru_cache(maxsize=8)
def load_lay_vocabulary(path: str) -> LayVocabulary:
    """Read ``{"terms": {phrase: clinical terms}}``; a missing file gives an empty vocabulary.

    Raises:
        FormatError: the file is not valid JSON or ``terms`` is not an object of strings.
    """
    terms = read_terms(path, "phrase: clinical terms")
    return EMPTY if terms is None else LayVocabulary.from_mapping(terms)


# --------------------------------------------------------------------------- abbreviations

ABBREVIATIONS_FILE = "abbreviations.json"
ABBREVIATION_SCAN = 200_000
"""Texts scanned for definitions at most (the first ones of a large index)."""

_DEFINITION = re.compile(r"\(([A-Za-z][A-Za-z0-9-]{1,9})(?:[;,][^)]*)?\)")


def _long_form(before: str, abbreviation: str) -> str | None:
    """The words before a parenthesis that spell ``abbreviation`` (Schwartz and Hearst):
    its letters and digits found right to left, the first at a word start, in at most
    ``min(n + 5, 2n)`` words; None when they do not, or cross a sentence or clause."""
    chars = [c.lower() for c in abbreviation if c.isalnum()]
    words = before.split()[-(min(len(chars) + 5, 2 * len(chars))) :]
    text = " ".join(words)
    i = len(text) - 1
    for k in range(len(chars) - 1, -1, -1):
        while i >= 0 and (text[i].lower() != chars[k] or (k == 0 and i > 0 and text[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
    found = text[text.rfind(" ", 0, i + 1) + 1 :].strip(" ,")
    if any(mark in found for mark in ".:;()[]") or len(found) <= len(abbreviation) + 2:
        return None
    return found


def defined_abbreviations(texts: Iterable[str], limit: int = ABBREVIATION_SCAN) -> dict[str, str]:
    """Abbreviation -> long form for every "long form (ABBR)" in ``texts`` (the first definition
    wins; an abbreviation needs an upper-case letter; at most ``limit`` texts are read)."""
    found: dict[str, str] = {}
    for n, text in enumerate(texts):
        if n >= limit:
            break
        for m in _DEFINITION.finditer(text):
            abbreviation = m.group(1)
            if abbreviation in found or not any(c.isupper() for c in abbreviation):
                continue
            long_form = _long_form(text[: m.start()], abbreviation)
            if long_form:
                found[abbreviation] = long_form
    return found


@dataclass(frozen=True)
class Abbreviations:
    """Abbreviation -> long form; matched as written (case-sensitive, whole words)."""

    terms: Mapping[str, str]
    pattern: re.Pattern[str] | None

    @classmethod
    def from_mapping(cls, terms: Mapping[str, str]) -> Abbreviations:
        if not terms:
            return cls({}, None)
        words = "|".join(re.escape(a) for a in sorted(terms, key=len, reverse=True))
        return cls(dict(terms), re.compile(rf"(?<![A-Za-z0-9])({words})(?![A-Za-z0-9])"))

    def expand(self, query: str) -> str:
        """``query`` followed by the long form of each abbreviation it uses (unless it says it)."""
        if self.pattern is None:
            return query
        low = query.lower()
        extra: list[str] = []
        for m in self.pattern.finditer(query):
            long_form = self.terms[m.group(1)]
            if long_form.lower() not in low and long_form not in extra:
                extra.append(long_form)
        return f"{query} {' '.join(extra)}" if extra else query


def spelled_out(query: str, abbreviations: Abbreviations) -> str:
    """``query`` with each abbreviation replaced by its long form ("Is RMDQ improved?" ->
    "Is Roland-Morris disability questionnaire improved?"): the words a vocabulary check sees."""
    if abbreviations.pattern is None:
        return query
    return abbreviations.pattern.sub(lambda m: abbreviations.terms[m.group(1)], query)


def load_abbreviations(path: str, texts: Iterable[str] = ()) -> Abbreviations:
    """The abbreviations ``texts`` define, then those of ``{"terms": {ABBR: long form}}`` at
    ``path`` for the rest (a missing file adds none).

    Raises:
        FormatError: the file is not valid JSON or ``terms`` is not an object of strings.
    """
    terms = defined_abbreviations(texts)
    for abbreviation, long_form in (read_terms(path, "abbreviation: long form") or {}).items():
        terms.setdefault(abbreviation, long_form)
    return Abbreviations.from_mapping(terms)
