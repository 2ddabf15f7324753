"""Evidence-aware document priors for hybrid retrieval (pure functions).

Two signals that the words of a question miss but its reader expects:

- **strength of evidence**: for the same match, a systematic review answers "does X work?"
  better than a narrative review or an animal study. The prior maps the passage's
  ``evidence_level`` (1 systematic reviews ... 5 animal studies, see
  :func:`assistant.documents.records.evidence_level`) to ``(5 - level) / 4``: 1.0, 0.75, 0.5, 0.25, 0.0.
  Passages without a level get 0; a corpus whose documents all share one level (any BEIR
  dataset) is ranked exactly as without the prior.
- **phase of low back pain**: a question about pain that started "two days ago" (expanded to
  "acute" by the lay vocabulary, or read as a duration: under 6 weeks acute, 6 to 12 weeks
  subacute, beyond that chronic) is answered by studies of that phase. A document whose
  ``lbp_phase`` is one the question names scores 1, a study of mixed phases 0.5, others 0;
  a question that names no phase gets 0 everywhere.

Hybrid retrieval adds ``prior_weight * prior + phase_weight * phase`` to the fused score
(both in [0, 1], like the fused score). Weights were chosen on the dev split of
``datasets/lbp-dev`` and checked on its held-out test split (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Phase words of a (lay-expanded) question -> the lbp_phase values they ask about.
_PHASE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("acute", re.compile(r"\b(?:acute|sub-?acute|post-acute|new bout|onset)\b")),
    ("chronic", re.compile(r"\b(?:chronic|long-lasting|persistent|long-term)\b")),
    ("recurrent", re.compile(r"\brecurren(?:t|ce|ces)\b")),
    ("prevention", re.compile(r"\bprevent(?:ion|ing|s)?\b")),
)
_PHASE_ALIASES = {"subacute": "acute", "sub-acute": "acute", "post-acute": "acute"}
MIXED_PHASE = "mixed"
MIXED_MATCH = 0.5
LOWEST_LEVEL = 5


def evidence_prior(metadata: Mapping[str, Any]) -> float:
    """``(5 - evidence_level) / 4`` clipped to [0, 1]; 0 without a level (or a NaN one)."""
    level = metadata.get("evidence_level")
    if not isinstance(level, int | float) or isinstance(level, bool):
        return 0.0
    try:
        value = float(level)
    except OverflowError:  # an integer past the float range
        value = math.inf if level > 0 else -math.inf
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, (LOWEST_LEVEL - value) / (LOWEST_LEVEL - 1)))


# How long the pain has lasted, as people say it: "my back's been bad for about two months",
# "back pain for 7 weeks", "it started 3 days ago". Only after words that speak of the pain
# lasting (or before "ago"), so that "benefits at 12 months" says nothing about the phase.
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3, "several": 4, "many": 6,
}  # fmt: skip
_AMOUNT = (
    r"(?P<n>\d+|a couple of|a few|several|many|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
)
_DURATION = re.compile(
    r"\b(?:(?:had|been|lasted|lasting|going on|pain|ache|aching|hurt\w*|sore|bad|trouble|suffer\w*|struggl\w*)"
    r"(?: [\w']+){0,3}? (?:for|over|since)(?: the (?:past|last))?|for the (?:past|last))"
    r"(?: (?:about|around|roughly|nearly|almost|over|more than|less than|just|only|under))? "
    rf"(?:{_AMOUNT} )?(?P<unit>days?|weeks?|months?|years?)\b|"
    rf"\b{_AMOUNT.replace('?P<n>', '?P<ago_n>')} (?P<ago_unit>days?|weeks?|months?) ago\b",
    re.IGNORECASE,
)


def duration_phase(question: str) -> str | None:
    """The LBP phase of a duration the question gives (acute under 6 weeks, subacute 6 to 12
    weeks, chronic beyond 12 weeks, the usual clinical cut-offs), None when it gives none."""
    m = _DURATION.search(question)
    if not m:
        return None
    amount = (m.group("n") or m.group("ago_n") or "").lower()
    unit = (m.group("unit") or m.group("ago_unit") or "").lower().rstrip("s")
    n = int(amount) if amount.isdigit() else _NUMBER_WORDS.get(amount, 6 if not amount else 1)
    weeks = {"day": n / 7, "week": n, "month": n * 4.3, "year": n * 52}[unit]
    return "acute" if weeks < 6 else "subacute" if weeks <= 12 else "chronic"


def without_duration(question: str) -> str:
    """``question`` without the durations it gives ("sore for more than a year"): they say which
    LBP phase is asked about (:func:`duration_phase`), not what the question is about."""
    return _DURATION.sub(" ", question)


def query_phases(text: str) -> frozenset[str]:
    """The LBP phases a question names, e.g. ``{"acute"}`` for "... acute low back pain onset",
    or gives as a duration ("for about two months": :func:`duration_phase`)."""
    low = text.lower()
    named = frozenset(phase for phase, pattern in _PHASE_PATTERNS if pattern.search(low))
    lasted = duration_phase(text)
    if lasted and not named & {"acute", "chronic"}:
        return named | {_PHASE_ALIASES.get(lasted, lasted)}
    return named


def document_phase(metadata: Mapping[str, Any]) -> str:
    """The passage's ``lbp_phase``, lower-cased, with sub-/post-acute folded into acute."""
    phase = str(metadata.get("lbp_phase") or "").strip().lower()
    return _PHASE_ALIASES.get(phase, phase)


def phase_match(phases: Iterable[str], doc_phase: str) -> float:
    """1 when ``doc_phase`` is one of ``phases``, 0.5 for a mixed-phase study, else 0."""
    wanted = set(phases)
    if not wanted:
        return 0.0
    if doc_phase in wanted:
        return 1.0
    return MIXED_MATCH if doc_phase == MIXED_PHASE else 0.0
