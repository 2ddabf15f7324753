"""What a quoted sentence says, and the facts about the study behind it. Pure functions.

Synthesized answers (:mod:`assistant.answers.synthesis`) group the sentences they quote by what
each one reports, count the studies behind each direction, and show a table of the studies.
Everything here is computed from the sentence text and the study's record fields, so a
reader can check each label against the quote and the record:

- :func:`sentence_direction`: ``benefit``, ``no difference``, ``uncertain`` (conflicting,
  mixed or unproven), ``harm`` (harms and safety) or ``finding`` (neither, e.g. a prevalence);
- :func:`sentence_phases`: the LBP phases a sentence names (``In acute LBP, ...``);
- :func:`is_framing`: sentences that describe how a study was done rather than what it found;
- :func:`evidence_row` and :func:`design_summary`: the evidence table and the counts of the
  bottom line, from the record fields only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from assistant.types import EvidenceRow

# Direction cues. "No difference" phrases are removed before benefit cues are looked for,
# so "no better than" does not count as "better".
_NO_DIFFERENCE = re.compile(
    r"\b(no ([\w-]+ ){0,3}(differences?|benefits?|effects?|advantage|gains?|improvements?|sign that)|"
    r"(did|does|do|was|were|is|are) not (appear to |seem to )?(significantly |statistically )?(differ\w*|improve\w*|"
    r"reduce\w*|lower\w*|prevent\w*|change\w*|help\w*|add\w*|superior|better|more effective|different|"
    r"significant\w*|reach significance|any better)|"
    r"no (more|better|less) (effective )?than|little or no|about the same|about equally|as effective as|"
    r"(broadly |largely )?similar|comparable|equally|ineffective|no longer present|failed to|not superior|"
    r"too small to matter|(clinically )?trivial|non-significant|not significant\w*|though not|"
    r"not (as |more |very |clearly )?(effective|helpful|beneficial|better|superior|different))\b",
    re.IGNORECASE,
)
_BENEFIT = re.compile(
    r"\b(improv\w*|reduc\w*|lower(ed)?|less|fewer|better|benefit\w*|effective|efficacy|superior|"
    r"reliev\w*|relief|eas(ed|es|e)|gains?|favou?r\w*|outperform\w*|help(ed|s)?|protect\w*|halved|cut|fell|"
    r"dropped|reversed|attenuat\w*|prevent\w*|normali[sz]ed|alleviat\w*|rose significantly|edged out|support(s|ed|ing)?|"
    r"significant(ly)? (effects?|benefits?|improvements?|reductions?)|(small|modest|moderate|medium|large) "
    r"(\w+ )?effects?)\b",
    re.IGNORECASE,
)
_UNCERTAIN = re.compile(
    r"\b(conflict\w*|uncertain\w*|unclear|unproven|inconsistent|did not agree|insufficient|sparse|too few|"
    r"not known|unknown|remains? to be (seen|shown)|could well change|needs? confirm\w*|"
    r"need(s|ed)? further (study|research))\b",
    re.IGNORECASE,
)
# Harms and safety: adverse events, side effects, harm, safety, and new or further back trouble.
_HARM = re.compile(
    r"\b(adverse (events?|effects?)|side[- ]effects?|harms?|unsafe|safe|safety|"
    r"(further|future|new) back (injury|injuries|trouble))\b",
    re.IGNORECASE,
)
_NOT_SIGNIFICANT = re.compile(
    r"\b(not (statistically )?significant\w*|did not reach (statistical )?significance|non-significant)\b", re.I
)
_TWO_CLAUSES = re.compile(r"\b(whereas|while)\b", re.IGNORECASE)
# Within one sentence, a benefit beside a "no difference" across one of these is a mixed result.
_CONTRAST = re.compile(r"\b(but|yet|although|though|whereas|while|however|only)\b", re.IGNORECASE)

# How a study was done, not what it found: kept out of answers.
# A study framed by its subject and what it set out to do ("This review asked whether ...",
# "this rat study examined ..."): the verb follows the subject closely, so "The authors judged
# aerobic and combined programmes ineffective" is a result, not framing.
_FRAMING = re.compile(
    r"(^|, )(this|the|in this|these|our)( [\w-]+,?){0,3} (review|study|trial|meta-analysis|article|paper|analysis|"
    r"authors?|randomi[sz]ed controlled trial)\b(,? [\w-]+){0,2},? (set out|looked|asked|aimed|examined|evaluated|"
    r"assessed|compared|investigated|describe[sd]?|searched|included|pooled|followed|estimated|tested|combined|"
    r"gathered|recruited|enrolled|is the journal republication)\b|"
    r"^(participants|patients|people|adults|rats|mice|animals)( [\w-]+){0,3} (received|were (given|offered|"
    r"assigned|randomi[sz]ed|allocated|grouped))\b|\b(was|were) grouped as\b|"
    # a long subject before what it set out to do: "This pragmatic, multicentre randomized
    # controlled trial in the United Kingdom, with 12 months of follow-up, tested whether ..."
    r"^(this|the|in this)\b(?:(?!\b(found|show\w*|report\w*|conclude\w*)\b)[^.;]){0,100}"
    r"\b(review|study|trial|meta-analysis|analysis)\b(?:(?!\b(found|show\w*|report\w*|conclude\w*)\b)[^.;]){0,120}"
    r"\b((tested|asked|examined|investigated|evaluated|assessed|explored) (whether|if|how)|compared|"
    r"set out to|aimed to|sought to|was designed to|commissioned)\b",
    re.IGNORECASE,
)
# Background and method statements that never report a result.
_BACKGROUND = re.compile(
    r"\b(is one of the most common|has long been debated|is often recommended|are a very popular)\b|"
    r"^(the )?title (shows|indicates|claims)\b|^going by its title\b|"
    r"\b(the )?(title|abstract|citation|record) (does|did) not (state|report|give|say|describe|name)\b|"
    r"\bnot summari[sz]ed in this corpus\b|\brestates the citation\b|\bcommissioned (this|the|an?)\b|"
    r"\b(similar at baseline|lost to follow-up|follow-up was (high|low|complete)|retention was|data were available|"
    r"PEDro|risk of bias was|(facts|data) come from (two |several )?published summar|met (the )?inclusion criteria|"
    r"were included;|secondary outcomes were|primary outcomes? (was|were)|main outcomes? (was|were)|to be included|"
    r"(investigators|researchers|the authors) (in [\w ,]+ )?randomi[sz]ed|randomi[sz]ed (adults|patients|participants|people)|"
    r"(therapies|treatments|outcomes|interventions) (assessed|examined|measured|compared) (were|was)|"
    r"(meant|consisted of|was defined as|were defined as) )\b",
    re.IGNORECASE,
)
# Method words: a sentence with one of these and no result cue describes the method.
_METHOD = re.compile(
    r"\b(searche[ds]|eligible|inclusion criteria|were included|selected trials|extracted|data extraction|"
    r"(rated|graded|appraised|scored) (with|using)|intention-to-treat|per-protocol|were randomi[sz]ed|randomly assigned|allocation|"
    r"meta-regression tested|thematic synthesis|were (pooled|analy[sz]ed)|models? adjusted|qualified|"
    # who took part, how groups were treated and when outcomes were measured
    r"took part|were (recruited|enrolled|allocated|split|screened|stratified)|comprised|(came|recruited) from|"
    r"(both|each|the two) (groups?|arms?)( [\w-]+){0,2} (had|trained|attended|received|shared|followed)|"
    r"assessments? took place|follow-up (lasted|visits?|was obtained)|(supplied|provided) (\d+-month )?data|"
    r"(outcomes?|measures?)( [\w-]+){0,3} (were|was) (measured|assessed|recorded|reassessed|rated)|"
    r"(were|was) (measured|recorded|reassessed) (at|before|after)|grouped by|pooling was done|served as|"
    r"(were|was) put on|(were|was) (examined|analy[sz]ed|stained|quantified) (for|with|by|using)|"
    r"(they|the authors|the investigators) included|(involved|enrolled) \d+ (patients|participants|people|adults)|"
    r"(were|was) induced|followed a protocol|(also )?covered|(had|did|received|got) either|"
    r"\d+ (people|patients|participants|adults|women|men)\b[^.;]{0,80}\b(did|received|attended|were given))\b",
    re.IGNORECASE,
)

_PHASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "acute",
        # plain language too: "new, short-term back pain" (not "a new bout": what prevention prevents)
        re.compile(
            r"\b(?<!sub-)(?<!post-)acute\b|\bless than 4 weeks\b|\bnew(ly)? (episode|onset)\b|"
            r"\b(new|recent|short-term|short-lived)(,? (new|recent|short-term))? (low )?back pain\b",
            re.I,
        ),
    ),
    ("subacute", re.compile(r"\bsub-?acute\b|\bpost-acute\b", re.I)),
    (
        "chronic",
        re.compile(r"\bchronic\b|\bcLBP\b|\bpersistent\b|\blong-lasting\b|\blong-term (low )?back pain\b", re.I),
    ),
    ("recurrent", re.compile(r"\brecurren\w*\b", re.I)),
    ("prevention", re.compile(r"\bprevent(s|ed|ing|ion)?\b", re.I)),
)
PHASE_LABELS = {
    "acute": "acute LBP",
    "subacute": "subacute LBP",
    "chronic": "chronic LBP",
    "recurrent": "recurrent LBP",
    "prevention": "prevention",
}

DIRECTION_HEADINGS = {
    "benefit": "Benefit",
    "no difference": "No difference",
    "uncertain": "Mixed, uncertain or conflicting",
    "harm": "Harms and safety",
    "finding": "Other findings",
}
DIRECTION_ORDER = ("benefit", "no difference", "uncertain", "harm", "finding")

# study_type (lower case) -> (singular, plural) of the design as counted in bottom lines.
_DESIGN_NAMES = {
    "cochrane review": ("systematic review", "systematic reviews"),
    "systematic review and meta-analysis": ("systematic review", "systematic reviews"),
    "systematic review": ("systematic review", "systematic reviews"),
    "meta-analysis": ("systematic review", "systematic reviews"),
    "qualitative systematic review": ("systematic review", "systematic reviews"),
    "clinical practice guideline review": ("guideline review", "guideline reviews"),
    "randomized controlled trial": ("randomized trial", "randomized trials"),
    "prospective cohort study": ("cohort study", "cohort studies"),
    "cohort study": ("cohort study", "cohort studies"),
    "narrative review": ("narrative review", "narrative reviews"),
    "animal study": ("animal study", "animal studies"),
}
_OTHER_DESIGN = ("other study", "other studies")
_DESIGN_ORDER = ("systematic review", "guideline review", "randomized trial", "cohort study", "narrative review")


def sentence_direction(text: str) -> str:
    """What a result sentence reports: ``benefit``, ``no difference``, ``uncertain``,
    ``harm`` or ``finding``.

    Harms and safety statements ("no serious adverse events") are ``harm`` whatever else
    they say; a sentence that names uncertainty or conflict, or reports a benefit and no
    difference side by side across a contrast ("eased pain, but did not ..."), is
    ``uncertain``, unless the difference is only a gain that was not significant ("improved,
    but not significantly": ``no difference``); otherwise the one kind of cue it has decides,
    and none gives ``finding``.
    """
    if _HARM.search(text):
        return "harm"
    if _UNCERTAIN.search(text):
        return "uncertain"
    no_difference = bool(_NO_DIFFERENCE.search(text))
    benefit = bool(_BENEFIT.search(_NO_DIFFERENCE.sub(" ", text)))
    if benefit and _NOT_SIGNIFICANT.search(text) and not _TWO_CLAUSES.search(text):
        return "no difference"  # "improved, but not significantly": the gain is qualified away
    if no_difference and benefit:
        return "uncertain" if _CONTRAST.search(_NO_DIFFERENCE.sub(" ", text)) else "no difference"
    if no_difference:
        return "no difference"
    return "benefit" if benefit else "finding"


def sentence_phases(text: str) -> tuple[str, ...]:
    """The LBP phases ``text`` names, in :data:`PHASE_LABELS` order."""
    return tuple(name for name, pattern in _PHASES if pattern.search(text))


def is_framing(text: str) -> bool:
    """True for a sentence that frames a study or describes its methods and reports no result."""
    if _BACKGROUND.search(text) or _FRAMING.search(text):
        return True
    return bool(_METHOD.search(text)) and sentence_direction(text) == "finding"


def phase_key(phases: Sequence[str], study_phase: str | None) -> str | None:
    """The phase a finding speaks for: the one its sentence names, else its study's (when
    the study is of one phase); None when neither says."""
    if len(phases) == 1:
        return phases[0]
    if not phases and study_phase in PHASE_LABELS:
        return study_phase
    return None


# --------------------------------------------------------------------------- studies


def design_names(study_type: str | None) -> tuple[str, str]:
    """(singular, plural) name of a design for counts ("systematic review", "systematic reviews")."""
    return _DESIGN_NAMES.get((study_type or "").lower(), _OTHER_DESIGN)


def count_phrase(count: int, names: tuple[str, str]) -> str:
    """``"1 randomized trial"``, ``"3 randomized trials"``."""
    return f"{count} {names[0] if count == 1 else names[1]}"


def design_summary(metas: Iterable[Mapping[str, Any]]) -> str:
    """The designs of some studies, counted, strongest first: ``"3 systematic reviews, 1
    guideline review and 2 randomized trials"``."""
    counts = Counter(design_names(m.get("study_type")) for m in metas)
    order = {name: i for i, name in enumerate(_DESIGN_ORDER)}
    parts = [count_phrase(c, names) for names, c in sorted(counts.items(), key=lambda t: order.get(t[0][0], 99))]
    return join_words(parts)


def join_words(parts: Sequence[str], last: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {last} {parts[-1]}"


def study_label(meta: Mapping[str, Any]) -> str:
    """First author and year (``"Hayden JA 2005"``), else the title's first words."""
    author = meta.get("first_author") or (meta.get("authors") or [None])[0]
    year = meta.get("year")
    if author:
        return f"{author} {year}" if year else str(author)
    title = str(meta.get("title") or "")
    short = " ".join(title.split()[:6])
    return f"{short}{'…' if len(title.split()) > 6 else ''}" + (f" ({year})" if year else "")


def study_size(meta: Mapping[str, Any]) -> str:
    """``"61 studies"``, ``"148 participants"``, ``"32 animals"`` or "" (unknown)."""
    size = meta.get("sample_size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return ""
    group = meta.get("design_group")
    unit = ("study", "studies") if group == "review" else ("animal", "animals") if group == "animal" else None
    unit = unit or ("participant", "participants")
    return f"{size} {unit[0] if size == 1 else unit[1]}"


def comparison_text(meta: Mapping[str, Any]) -> str:
    """``"interventions vs comparators"`` from the record ("" when it names neither)."""
    interventions = "; ".join(str(x) for x in meta.get("interventions") or ())
    comparators = "; ".join(str(x) for x in meta.get("comparators") or ())
    if interventions and comparators:
        return f"{interventions} vs {comparators}"
    return interventions or comparators


def evidence_row(
    meta: Mapping[str, Any],
    doc_id: str,
    result: str,
    passage_id: str,
    direction: str,
    related: bool = False,
    n: int | None = None,
) -> EvidenceRow:
    """The evidence-table row of one study (record fields, the quoted result, its direction);
    ``n`` is the reference number cited (default: the record's own)."""
    if n is None:
        own = meta.get("n")
        n = own if isinstance(own, int) else int((meta.get("refs") or [0])[0])
    return EvidenceRow(
        n=n,
        doc_id=doc_id,
        study=study_label(meta),
        design=str(meta.get("study_type") or "not stated"),
        design_group=str(meta.get("design_group") or "other"),
        species=meta.get("species"),
        size=study_size(meta),
        population=str(meta.get("population") or ""),
        phase=meta.get("lbp_phase"),
        comparison=comparison_text(meta),
        result=result,
        passage_id=passage_id,
        direction=direction,
        related=related,
    )


def citation_markers(refs: Iterable[int]) -> str:
    """``[20][23]`` for the sorted, unique reference numbers."""
    return "".join(f"[{n}]" for n in sorted(set(refs)))


def consistency(counts: Mapping[str, int]) -> str:
    """``consistent`` (all agree), ``mostly consistent`` (three quarters or more) or ``mixed``."""
    total = sum(counts.values())
    top = max(counts.values(), default=0)
    if total <= 1 or top == total:
        return "consistent"
    return "mostly consistent" if top / total >= 0.75 else "mixed"
