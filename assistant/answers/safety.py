"""Red-flag screening: symptoms that need urgent medical care before any exercise evidence.

The rules are data (``corpus/red_flags.json``): each rule names a flag kind, plain-language
label, regex patterns, optional ``requires_any`` context patterns, optional ``exclude_context``
patterns (e.g. a family member is the subject), the clinical source and the urgent advice.
A pattern match counts only when it is not negated in its clause ("no fever", "denies saddle
anaesthesia, bladder or bowel dysfunction"), not retracted right after ("I had cancer... no,
I mean my dad") and not about someone else when the rule says so.

Typical use::

    flags = detect_red_flags(message)
    if flags:
        text = urgent_message(flags, mode) + "\\n\\n" + answer_text
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.config import DEFAULT_CORPUS_DIR
from assistant.errors import FormatError

RED_FLAGS_FILE = "red_flags.json"
FLAG_KINDS = ("cauda_equina", "infection", "cancer", "fracture", "neuro_deficit")
MODES = ("clinician", "patient")
#: Flag kinds from most to least urgent; messages list advice in this order.
URGENCY_ORDER = ("cauda_equina", "neuro_deficit", "infection", "fracture", "cancer")

#: The suspected condition behind each flag kind, named for clinicians.
CLINICAL_CONDITIONS: dict[str, str] = {
    "cauda_equina": "cauda equina syndrome",
    "infection": "spinal infection (discitis, vertebral osteomyelitis or epidural abscess)",
    "cancer": "spinal malignancy (e.g. metastasis)",
    "fracture": "vertebral fracture",
    "neuro_deficit": "progressive neurological deficit (severe nerve root compression)",
}

PATIENT_URGENT_OPENING = "Seek medical care now."
PATIENT_URGENT_CLOSING = (
    "Do not wait to see if it gets better. Do not start new exercises until a doctor has checked you. "
    "If you cannot see a doctor today, go to an emergency department."
)
CLINICIAN_URGENT_ACTION = (
    "Arrange same-day medical assessment; exercise-based management does not apply until serious pathology is excluded."
)
CLINICIAN_EMERGENCY_ACTION = (
    "Refer as an emergency for suspected cauda equina syndrome; exercise-based management does not apply "
    "until serious pathology is excluded."
)

_DEFAULT_WINDOW_WORDS = 8
_DEFAULT_RETRACTION_CHARS = 40
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u02bc": "'"})


@dataclass(frozen=True)
class RedFlag:
    """One red-flag rule that fired on a message.

    Attributes:
        id: rule id (e.g. ``cauda_equina_bladder_bowel``).
        flag: flag kind: ``cauda_equina``, ``infection``, ``cancer``, ``fracture`` or ``neuro_deficit``.
        label: what was found, in plain words.
        advice: the urgent advice for a patient, in plain words.
        source: the clinical guideline(s) or framework the rule is based on.
        matched: the text of the message that triggered the rule.
    """

    id: str
    flag: str
    label: str
    advice: str
    source: str
    matched: str


@dataclass(frozen=True)
class Rule:
    """A compiled red-flag rule (see the module docstring for the fields)."""

    id: str
    flag: str
    label: str
    advice: str
    source: str
    patterns: tuple[re.Pattern[str], ...]
    requires_any: tuple[re.Pattern[str], ...] = ()
    exclude_context: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """All rules of one file plus the negation settings they share."""

    path: Path
    rules: tuple[Rule, ...]
    negation_cues: tuple[re.Pattern[str], ...]
    retraction_cues: tuple[re.Pattern[str], ...]
    clause_breaks: re.Pattern[str] | None
    window_words: int
    retraction_chars: int


def default_rules_path() -> Path:
    """``corpus/red_flags.json`` of the project (``assistant.config.DEFAULT_CORPUS_DIR``)."""
    return DEFAULT_CORPUS_DIR / RED_FLAGS_FILE


def load_rules(rules_path: Path | str | None = None) -> RuleSet:
    """Load and compile a red-flag rules file, once per resolved path.

    Args:
        rules_path: the JSON rules file; None for :func:`default_rules_path`.

    Returns:
        The compiled :class:`RuleSet`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: (a :class:`~assistant.errors.FormatError`) the file is malformed; the message
            names the file and the problem.
    """
    path = Path(rules_path) if rules_path is not None else default_rules_path()
    return _load_rules_cached(path.resolve())


def detect_red_flags(message: str, rules_path: Path | None = None) -> list[RedFlag]:
    """Find the red flags a message describes.

    A rule fires when one of its patterns matches outside a negated or retracted clause and,
    if it has ``requires_any``, one of those patterns matches too (same negation handling).

    Args:
        message: the user's message.
        rules_path: rules file; None for ``corpus/red_flags.json``.

    Returns:
        One :class:`RedFlag` per rule that fired, in the rules file's order (empty when none).
    """
    rule_set = load_rules(rules_path)
    text = message.translate(_QUOTES)
    found: list[RedFlag] = []
    for rule in rule_set.rules:
        matched = _first_live_match(text, rule.patterns, rule_set, rule.exclude_context)
        if matched is None:
            continue
        if rule.requires_any and _first_live_match(text, rule.requires_any, rule_set, ()) is None:
            continue
        found.append(RedFlag(rule.id, rule.flag, rule.label, rule.advice, rule.source, matched))
    return found


def urgent_message(flags: Sequence[RedFlag], mode: str) -> str:
    """The "seek care now" text that must open an answer when red flags were found.

    Args:
        flags: the flags from :func:`detect_red_flags`.
        mode: ``patient`` (plain words, US grade 8 or below, starts with "Seek medical care now.")
            or ``clinician`` (one concise line naming the suspected condition(s)).

    Returns:
        The message, or ``""`` when ``flags`` is empty.

    Raises:
        ValueError: unknown ``mode``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not flags:
        return ""
    if mode == "patient":
        return _patient_message(flags)
    return _clinician_message(flags)


def _by_urgency(flags: Sequence[RedFlag]) -> list[RedFlag]:
    rank = {kind: i for i, kind in enumerate(URGENCY_ORDER)}
    return sorted(flags, key=lambda f: rank.get(f.flag, len(rank)))  # stable: file order within a kind


def _patient_message(flags: Sequence[RedFlag]) -> str:
    advice: list[str] = []
    seen_kinds: set[str] = set()
    for flag in _by_urgency(flags):  # one advice per flag kind keeps the message short
        if flag.flag not in seen_kinds:
            seen_kinds.add(flag.flag)
            advice.append(flag.advice)
    return " ".join([PATIENT_URGENT_OPENING, *advice, PATIENT_URGENT_CLOSING])


def _clinician_message(flags: Sequence[RedFlag]) -> str:
    flags = _by_urgency(flags)
    kinds = list(dict.fromkeys(f.flag for f in flags))
    conditions = "; ".join(CLINICAL_CONDITIONS.get(k, k) for k in kinds)
    features = "; ".join(dict.fromkeys(f.label for f in flags))
    action = CLINICIAN_EMERGENCY_ACTION if "cauda_equina" in kinds else CLINICIAN_URGENT_ACTION
    return f"URGENT - red flags for possible {conditions}. Features: {features}. {action}"


def _first_live_match(
    text: str,
    patterns: Sequence[re.Pattern[str]],
    rule_set: RuleSet,
    exclude_context: Sequence[re.Pattern[str]],
) -> str | None:
    """The first match of any pattern that is neither negated, retracted nor excluded by context."""
    for pattern in patterns:
        for m in pattern.finditer(text):
            scope = _clause_scope(text, m.start(), rule_set)
            if any(cue.search(scope) for cue in rule_set.negation_cues):
                continue
            if any(cue.search(scope) for cue in exclude_context):
                continue
            after = text[m.end() : m.end() + rule_set.retraction_chars]
            if any(cue.search(after) for cue in rule_set.retraction_cues):
                continue
            return m.group(0)
    return None


def _clause_scope(text: str, start: int, rule_set: RuleSet) -> str:
    """The last ``window_words`` words before ``start`` within the same clause."""
    clause_start = 0
    if rule_set.clause_breaks is not None:
        for brk in rule_set.clause_breaks.finditer(text):
            if brk.end() > start:
                break
            clause_start = brk.end()
    words = text[clause_start:start].split()
    return " ".join(words[-rule_set.window_words :]) if rule_set.window_words > 0 else ""


@lru_cache(maxsize=8)
def _load_rules_cached(path: Path) -> RuleSet:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(path, exc.lineno, f"not valid JSON: {exc.msg}") from exc
    return _parse_rule_set(raw, path)


def _parse_rule_set(raw: Any, path: Path) -> RuleSet:
    if not isinstance(raw, dict):
        raise FormatError(path, None, "top level must be an object with a 'rules' list")
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise FormatError(path, None, "'rules' must be a non-empty list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(rules_raw):
        rule = _parse_rule(item, i, path)
        if rule.id in seen:
            raise FormatError(path, None, f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        rules.append(rule)
    breaks = _regex_list(raw, "clause_breaks", path, "top level", required=False)
    return RuleSet(
        path=path,
        rules=tuple(rules),
        negation_cues=_regex_list(raw, "negation_cues", path, "top level", required=True),
        retraction_cues=_regex_list(raw, "retraction_cues", path, "top level", required=False),
        clause_breaks=re.compile("|".join(f"(?:{b.pattern})" for b in breaks), re.IGNORECASE) if breaks else None,
        window_words=_int_field(raw, "negation_window_words", _DEFAULT_WINDOW_WORDS, path),
        retraction_chars=_int_field(raw, "retraction_window_chars", _DEFAULT_RETRACTION_CHARS, path),
    )


def _parse_rule(item: Any, index: int, path: Path) -> Rule:
    where = f"rule #{index + 1}"
    if not isinstance(item, dict):
        raise FormatError(path, None, f"{where} must be an object")
    for key in ("id", "flag", "label", "advice", "source"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise FormatError(path, None, f"{where}: '{key}' must be a non-empty string")
    where = f"rule {item['id']!r}"
    if item["flag"] not in FLAG_KINDS:
        raise FormatError(path, None, f"{where}: unknown flag {item['flag']!r} (expected one of {FLAG_KINDS})")
    return Rule(
        id=item["id"],
        flag=item["flag"],
        label=item["label"],
        advice=item["advice"],
        source=item["source"],
        patterns=_regex_list(item, "patterns", path, where, required=True),
        requires_any=_regex_list(item, "requires_any", path, where, required=False),
        exclude_context=_regex_list(item, "exclude_context", path, where, required=False),
    )


def _regex_list(
    obj: dict[str, Any], key: str, path: Path, where: str, *, required: bool
) -> tuple[re.Pattern[str], ...]:
    value = obj.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value) or not all(isinstance(v, str) for v in value):
        need = "a non-empty list" if required else "a list"
        raise FormatError(path, None, f"{where}: '{key}' must be {need} of regex strings")
    compiled = []
    for pattern in value:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise FormatError(path, None, f"{where}: invalid regex in '{key}': {pattern!r} ({exc})") from exc
    return tuple(compiled)


def _int_field(obj: dict[str, Any], key: str, default: int, path: Path) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(path, None, f"'{key}' must be a non-negative integer")
    return value
