"""Rendering for the web app: answers, evidence tables, source cards, exports. Pure functions,
no Gradio.

Everything that came from a user or from the corpus is HTML-escaped first; the only markup
in the output is what these functions add themselves (paragraphs, ``[n]`` links to the
source cards, the evidence table, badges, ``<mark>`` around quoted sentences). The app passes this HTML to the
Chatbot and HTML components; nothing here retrieves or composes answers.

A *conversation* is the list of turns the app keeps per browser session, each a dict::

    {"question": str, "mode": str, "filters": dict, "answer": Answer.to_dict()}
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

Turn = Mapping[str, Any]

APP_TITLE = "Exercise for low back pain: evidence assistant"
DISCLAIMER = (
    "Answers are drawn from research summaries and cite their sources; they are not a diagnosis or a "
    "treatment plan. If your pain is severe, follows an injury, or comes with numbness, weakness, fever "
    "or problems passing urine, contact a doctor or emergency services."
)
RED_FLAG_TITLE = "Urgent: get medical help"
SOURCES_PLACEHOLDER = (
    '<p class="lbp-empty">Sources appear here. Every <strong>[n]</strong> in an answer links to its card: '
    "who wrote it, where it was published, and the passage the answer quotes.</p>"
)

DESIGN_CHOICES: tuple[tuple[str, str], ...] = (
    ("Reviews and guidelines", "review"),
    ("Randomized trials", "trial"),
    ("Cohort studies", "cohort"),
    ("Animal studies", "animal"),
    ("Other (narrative, topic summary)", "other"),
)
PHASE_CHOICES: tuple[tuple[str, str], ...] = (
    ("Acute", "acute"),
    ("Subacute", "subacute"),
    ("Chronic", "chronic"),
)
# UI choice -> the design_group values it stands for.
_DESIGN_VALUES = {"other": ("other", "topic")}
# Studies of mixed populations cover every phase, so a phase filter keeps them.
_PHASE_ALWAYS = ("mixed",)

_CITE_RE = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")
_SENTENCE_END_RE = re.compile(r"[.!?](?:[\"')\]]*)(?:\s*\[\d+(?:\s*[,;–-]\s*\d+)*\])*(?=\s|$)")
_WORD_RE = re.compile(r"\w+")
_PMID_RE = re.compile(r"^\d{1,9}$")


def esc(text: Any) -> str:
    """HTML-escape any value (``None`` becomes empty)."""
    return html.escape("" if text is None else str(text), quote=True)


def card_id(turn: int, n: int) -> str:
    """The element id of source card ``n`` of answer ``turn`` (both 1-based)."""
    return f"src-{turn}-{n}"


# --------------------------------------------------------------------------- filters and history


def filters_from_ui(
    human_only: bool, designs: Sequence[str] | None, phases: Sequence[str] | None
) -> dict[str, list[str]]:
    """The ``filters`` dict for :meth:`Assistant.ask` from the filter controls (empty = no filter).

    Args:
        human_only: keep human studies only (``species=human``).
        designs: ``design_group`` choices of :data:`DESIGN_CHOICES` (none ticked = all).
        phases: ``lbp_phase`` choices of :data:`PHASE_CHOICES`; studies of mixed populations are
            kept too (none ticked = all).
    """
    filters: dict[str, list[str]] = {}
    if human_only:
        filters["species"] = ["human"]
    if designs:
        filters["design_group"] = [v for d in designs for v in _DESIGN_VALUES.get(d, (d,))]
    if phases:
        filters["lbp_phase"] = [*phases, *(p for p in _PHASE_ALWAYS if p not in phases)]
    return filters


def history_for_ask(conversation: Sequence[Turn]) -> list[dict[str, str]]:
    """The ``history`` argument of :meth:`Assistant.ask`: user and assistant messages, in order."""
    history: list[dict[str, str]] = []
    for turn in conversation:
        history.append({"role": "user", "content": str(turn["question"])})
        history.append({"role": "assistant", "content": str(turn["answer"].get("answer", ""))})
    return history


# --------------------------------------------------------------------------- answer text


def _cite_link(turn: int, n: int, text: str) -> str:
    """A link from ``text`` (already escaped) to source card ``n`` of answer ``turn``."""
    return f'<a class="lbp-cite" href="#{card_id(turn, n)}" title="Source {n}">{text}</a>'


def _link_citations(escaped: str, turn: int, known: set[int]) -> str:
    """Turn ``[3]`` and ``[1, 4]`` in already-escaped text into links to the source cards."""

    def link(n: int, text: str) -> str:
        return _cite_link(turn, n, text)

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

    return _CITE_RE.sub(repl, escaped)


def _paragraph_html(text: str, turn: int, known: set[int]) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and all(ln.startswith(("- ", "* ", "• ")) for ln in lines):
        items = "".join(f"<li>{_link_citations(esc(ln[2:].strip()), turn, known)}</li>" for ln in lines)
        return f"<ul>{items}</ul>"
    rendered = [_link_citations(esc(ln), turn, known) for ln in lines]
    if len(lines) > 1 and lines[0].endswith(":") and not _CITE_RE.search(lines[0]):
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


# --------------------------------------------------------------------------- source cards


def _spans(passage: str, quote_: str) -> list[tuple[int, int]]:
    """Where ``quote_`` occurs in ``passage``: exact, then ignoring case and spacing, then the
    passage sentence sharing most words with it (at least 60 %)."""
    quote_ = quote_.strip()
    if not quote_:
        return []
    # Answers may add a trailing [n] or drop the final period; match the words themselves.
    core = _CITE_RE.sub("", quote_).strip().rstrip(".!?;: ").strip()
    if not core:
        return []
    start = passage.find(core)
    if start >= 0:
        return [(start, start + len(core))]
    pattern = r"\s+".join(re.escape(w) for w in core.split())
    m = re.search(pattern, passage, flags=re.IGNORECASE)
    if m:
        return [(m.start(), m.end())]
    words = {w.lower() for w in _WORD_RE.findall(core)}
    best: tuple[float, int, int] = (0.0, 0, 0)
    for s in re.finditer(r"[^.!?]+[.!?]*", passage):
        sw = {w.lower() for w in _WORD_RE.findall(s.group(0))}
        if not sw or not words:
            continue
        overlap = len(words & sw) / len(words | sw)
        if overlap > best[0]:
            lead = len(s.group(0)) - len(s.group(0).lstrip())
            best = (overlap, s.start() + lead, s.end())
    return [(best[1], best[2])] if best[0] >= 0.6 else []


def highlight_passage(passage: str, quotes: Sequence[str]) -> str:
    """The passage, escaped, with each quoted sentence wrapped in ``<mark>``."""
    spans = sorted(s for q in quotes for s in _spans(passage, q))
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out, pos = [], 0
    for a, b in merged:
        out.append(esc(passage[pos:a]))
        out.append(f"<mark>{esc(passage[a:b])}</mark>")
        pos = b
    out.append(esc(passage[pos:]))
    return "".join(out)


def _authors(authors: Sequence[str]) -> str:
    names = [a for a in authors if a and a.lower() not in ("et al", "et al.")]
    if not names:
        return ""
    shown = ", ".join(names[:3])
    return shown + (" et al." if len(names) > 3 or len(names) < len(authors) else "")


def _link(href: str, text: str, label: str) -> str:
    return f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer" aria-label="{esc(label)}">{esc(text)}</a>'


def _safe_url(url: Any) -> str | None:
    return str(url) if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def group_citations(citations: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Citations grouped by reference number ``n`` (an answer may quote several passages of
    one reference), in order of first appearance."""
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for c in citations:
        groups.setdefault(int(c["n"]), []).append(c)
    return list(groups.values())


def render_card(citations: Sequence[Mapping[str, Any]], turn: int) -> str:
    """HTML card of one reference: number, title, authors, journal, year, badges, links, and
    each cited passage with the quoted sentences highlighted.

    Args:
        citations: the answer's citations of one reference (same ``n``), at least one.
        turn: 1-based number of the answer (part of the card id).
    """
    citation = citations[0]
    n = int(citation["n"])
    cid = card_id(turn, n)
    title = esc(citation.get("title") or citation.get("doc_id") or "Untitled")
    byline = " · ".join(
        x
        for x in (
            esc(_authors(citation.get("authors") or ())),
            f"<em>{esc(citation['journal'])}</em>" if citation.get("journal") else "",
            esc(citation.get("year") or ""),
        )
        if x
    )
    badges = []
    if citation.get("study_type"):
        badges.append(f'<span class="lbp-badge lbp-badge-type">{esc(str(citation["study_type"]).capitalize())}</span>')
    species = citation.get("species")
    if species:
        kind = "human" if species == "human" else "mixed" if species == "mixed" else "animal"
        badges.append(f'<span class="lbp-badge lbp-species-{kind}">{esc(str(species).capitalize())}</span>')
    if citation.get("confidence"):
        badges.append(f'<span class="lbp-badge lbp-badge-confidence">Confidence: {esc(citation["confidence"])}</span>')
    links = []
    pmid = str(citation.get("pmid") or "").strip()
    if _PMID_RE.match(pmid):
        links.append(_link(f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/", f"PMID {pmid}", f"PubMed record {pmid}"))
    doi = str(citation.get("doi") or "").strip()
    if doi:
        links.append(_link(f"https://doi.org/{quote(doi, safe='/:;()._-')}", f"DOI {doi}", f"DOI {doi}"))
    url = _safe_url(citation.get("url"))
    if url and not links:
        links.append(
            _link(
                url,
                "Find on PubMed" if "pubmed" in url else "Find the record",
                f"Find {citation.get('title') or 'the record'}",
            )
        )
    passages = "".join(
        f'<blockquote class="lbp-passage">{highlight_passage(str(c.get("passage") or ""), c.get("quotes") or ())}'
        "</blockquote>"
        for c in citations
    )
    notes = dict.fromkeys(str(c["source_note"]) for c in citations if c.get("source_note"))
    note = "".join(f'<p class="lbp-note">{esc(x)}</p>' for x in notes)
    return (
        f'<article class="lbp-card" id="{cid}" tabindex="-1" aria-labelledby="{cid}-title">'
        f'<h4 class="lbp-card-title" id="{cid}-title"><span class="lbp-n">[{n}]</span> {title}</h4>'
        + (f'<p class="lbp-byline">{byline}</p>' if byline else "")
        + (f'<p class="lbp-badges">{"".join(badges)}</p>' if badges else "")
        + (f'<p class="lbp-links">{" ".join(links)}</p>' if links else "")
        + f"{passages}{note}</article>"
    )


def _shorten(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to at most ``limit`` characters (at a word end where one is
    near) and ending in an ellipsis when cut."""
    text = _one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def _one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


def render_sources(conversation: Sequence[Turn]) -> str:
    """The sources panel: cards of every answer, newest first; older answers folded."""
    if not conversation:
        return f'<div class="lbp-sources">{SOURCES_PLACEHOLDER}</div>'
    groups = []
    last = len(conversation)
    for i in range(last, 0, -1):
        turn = conversation[i - 1]
        answer = turn["answer"]
        cards = "".join(render_card(g, i) for g in group_citations(answer.get("citations", ())))
        if not cards:
            why = "it is urgent safety advice" if answer.get("red_flag") else "nothing in the evidence matched"
            cards = f'<p class="lbp-empty">No sources for this answer: {why}.</p>'
        head = f"Answer {i}: {esc(_shorten(turn['question']))}"
        if i == last:
            banner = (
                '<div class="lbp-red-flag lbp-red-flag-banner" role="alert">'
                f'<p class="lbp-red-flag-title"><span aria-hidden="true">⚠</span> {esc(RED_FLAG_TITLE)}</p>'
                "<p>This message mentions warning signs. Read the urgent advice at the top of the answer.</p></div>"
                if answer.get("red_flag")
                else ""
            )
            label = f"Sources for answer {i}"
            groups.append(f'<section class="lbp-turn" aria-label="{label}"><h3>{head}</h3>{banner}{cards}</section>')
        else:
            groups.append(f'<details class="lbp-turn"><summary>{head}</summary>{cards}</details>')
    return f'<div class="lbp-sources">{"".join(groups)}</div>'


# --------------------------------------------------------------------------- evidence table

# (key, header) of each column, in order; a cell's class is ``lbp-ev-<key>``.
EVIDENCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("n", "Ref."),
    ("study", "Study"),
    ("design", "Design"),
    ("size", "Size"),
    ("population", "Population and phase"),
    ("comparison", "Comparison"),
    ("result", "Main result"),
    ("direction", "Direction"),
)
EVIDENCE_CAPTION = "Evidence table"
DIRECTION_LABELS = {
    "benefit": "Benefit",
    "no difference": "No difference",
    "uncertain": "Uncertain",
    "harm": "Harm",
    "finding": "Finding",
}
RELATED_NOTE = "Related: the study does not cover everything the question asks."
POPULATION_LIMIT = 70  # characters shown in the table; the full text is in the title attribute
COMPARISON_LIMIT = 90
_PHASE_WORDS = {"mixed": "mixed durations"}
_NO_PHASE = ("", "not applicable", "n/a", "none", "unknown")


def _phase(row: Mapping[str, Any]) -> str:
    phase = _one_line(row.get("phase")).lower()
    return "" if phase in _NO_PHASE else _PHASE_WORDS.get(phase, phase)


def _design(row: Mapping[str, Any]) -> str:
    """The design, and the species when it is not human (``"Randomized trial, rat"``)."""
    design = _one_line(row.get("design") or row.get("design_group"))
    species = _one_line(row.get("species"))
    if species and species.lower() != "human":
        return f"{design}, {species}" if design else species
    return design


def _result(row: Mapping[str, Any]) -> str:
    """The quoted result on one line, without quotation marks of its own around it."""
    result = _one_line(row.get("result"))
    if len(result) > 1 and result[0] in "\"“'" and result[-1] in "\"”'":
        result = result[1:-1].strip()
    return result


def _direction(row: Mapping[str, Any]) -> str:
    direction = _one_line(row.get("direction")).lower()
    return DIRECTION_LABELS.get(direction, direction.capitalize() or DIRECTION_LABELS["finding"])


def evidence_cells(row: Mapping[str, Any]) -> dict[str, str]:
    """Plain one-line text of each :data:`EVIDENCE_COLUMNS` cell of one evidence row
    (``EvidenceRow.to_dict()``), for the text and Markdown exports."""
    population, phase = _one_line(row.get("population")), _phase(row)
    result = _result(row)
    return {
        "n": f"[{row['n']}]",
        "study": _one_line(row.get("study") or row.get("doc_id")),
        "design": _design(row),
        "size": _one_line(row.get("size")),
        "population": f"{population} ({phase})" if population and phase else population or phase,
        "comparison": _one_line(row.get("comparison")),
        "result": f"“{result}”" if result else "",
        "direction": _direction(row) + (" (related)" if row.get("related") else ""),
    }


def _evidence_row_html(row: Mapping[str, Any], turn: int, known: set[int]) -> str:
    n = int(row["n"])
    text = evidence_cells(row)
    population = _one_line(row.get("population"))
    shown = _shorten(population, POPULATION_LIMIT)
    who = [f'<span title="{esc(population)}">{esc(shown)}</span>' if shown != population else esc(population)]
    if _phase(row):
        who.append(f'<span class="lbp-badge lbp-ev-phase">{esc(_phase(row))}</span>')
    comparison = text["comparison"]
    compared = _shorten(comparison, COMPARISON_LIMIT)
    slug = _one_line(row.get("direction")).lower()
    slug = slug.replace(" ", "-") if slug in DIRECTION_LABELS else "other"
    direction = f'<span class="lbp-badge lbp-dir lbp-dir-{slug}">{esc(_direction(row))}</span>'
    if row.get("related"):
        direction += f' <span class="lbp-badge lbp-ev-related-badge" title="{esc(RELATED_NOTE)}">related</span>'
    result = _result(row)
    inner = {
        "n": _cite_link(turn, n, f"[{n}]") if n in known else f"[{n}]",
        "study": esc(text["study"]),
        "design": esc(text["design"]),
        "size": esc(text["size"]),
        "population": " ".join(x for x in who if x),
        "comparison": f'<span title="{esc(comparison)}">{esc(compared)}</span>'
        if compared != comparison
        else esc(comparison),
        "result": f"“{_link_citations(esc(result), turn, known)}”" if result else "",
        "direction": direction,
    }
    cells = "".join(
        f'<th scope="row" class="lbp-ev-{key}">{inner[key]}</th>'
        if key == "study"
        else f'<td class="lbp-ev-{key}">{inner[key]}</td>'
        for key, _ in EVIDENCE_COLUMNS
    )
    return f'<tr class="lbp-ev-row{" lbp-ev-related" if row.get("related") else ""}">{cells}</tr>'


def render_evidence_table(rows: Sequence[Mapping[str, Any]], turn: int, known: set[int] | None = None) -> str:
    """HTML table of an answer's evidence: one row per cited study (``EvidenceRow.to_dict()``).

    Columns are :data:`EVIDENCE_COLUMNS`; ``[n]`` links to the source card like the links in
    the answer, long populations and comparisons are shortened (full text in ``title``), the
    result is quoted and the direction is a colored badge (plus a "related" badge for related
    evidence). At phone width the CSS turns each row into a labelled card.

    Args:
        rows: the answer's ``evidence`` list; empty gives "".
        turn: 1-based number of the answer (links target its cards).
        known: reference numbers that have a card; default the rows' own numbers.
    """
    if not rows:
        return ""
    known = {int(r["n"]) for r in rows} if known is None else known
    head = "".join(f'<th scope="col">{esc(label)}</th>' for _, label in EVIDENCE_COLUMNS)
    body = "".join(_evidence_row_html(r, turn, known) for r in rows)
    count = f"{len(rows)} {'study' if len(rows) == 1 else 'studies'}"
    note = f'<span class="lbp-ev-note">{esc(RELATED_NOTE)}</span>' if any(r.get("related") for r in rows) else ""
    return (
        f'<div class="lbp-evidence"><table class="lbp-ev-table">'
        f'<caption>{esc(EVIDENCE_CAPTION)} <span class="lbp-ev-count">({count})</span>{note}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def evidence_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines of a Markdown table of the evidence rows: header, rule, then one line per row
    (``|`` escaped, no line breaks in cells); no rows give no lines."""
    if not rows:
        return []

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [line([label for _, label in EVIDENCE_COLUMNS]), "|" + "---|" * len(EVIDENCE_COLUMNS)]
    for row in rows:
        cells = evidence_cells(row)
        lines.append(line([cells[key] for key, _ in EVIDENCE_COLUMNS]))
    return lines


def evidence_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The evidence rows as plain text, one line per study:
    ``[n] Study: Design: ...; Size: ...; ...; Direction: ...`` (empty cells left out)."""
    lines = []
    for row in rows:
        cells = evidence_cells(row)
        fields = "; ".join(f"{label}: {cells[key]}" for key, label in EVIDENCE_COLUMNS[2:] if cells[key])
        lines.append(f"{cells['n']} {cells['study']}: {fields}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- exports


def answer_with_references(answer: Mapping[str, Any]) -> str:
    """Plain text of one answer (``Answer.to_dict()``), its evidence table (one line per study)
    and its reference list (one line per reference), for the clipboard."""
    parts = [str(answer.get("answer", "")).strip()]
    rows = answer.get("evidence") or ()
    if rows:
        parts.append(f"{EVIDENCE_CAPTION}\n{evidence_text(rows)}")
    groups = group_citations(answer.get("citations", ()))
    if groups:
        refs = "\n".join(f"{g[0]['n']}. {_reference(g[0], markdown=False)}" for g in groups)
        parts.append(f"References\n{refs}")
    return "\n\n".join(parts)


def conversation_markdown(conversation: Sequence[Turn], now: datetime | None = None) -> str:
    """The whole conversation as Markdown: each question, answer, evidence table and reference list."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {APP_TITLE}", "", f"Conversation exported {stamp}. {DISCLAIMER}", ""]
    for i, turn in enumerate(conversation, 1):
        answer = turn["answer"]
        lines += [f"## {i}. {' '.join(str(turn['question']).split())}", ""]
        lines += [f"*Mode: {turn.get('mode', answer.get('mode', ''))}*", ""]
        if answer.get("red_flag"):
            lines += [f"> **{RED_FLAG_TITLE}**", ""]
        lines += [str(answer.get("answer", "")).strip(), ""]
        table = evidence_markdown(answer.get("evidence") or ())
        if table:
            lines += [f"**{EVIDENCE_CAPTION}**", "", *table, ""]
        citations = answer.get("citations", ())
        if citations:
            lines += ["**References**", ""]
            for group in group_citations(citations):
                lines.append(f"{group[0]['n']}. {_reference(group[0])}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _reference(c: Mapping[str, Any], markdown: bool = True) -> str:
    parts = [x for x in (_authors(c.get("authors") or ()), str(c.get("title") or "").rstrip(".")) if x]
    text = ". ".join(parts) + "."
    where = " ".join(str(x) for x in (c.get("journal"), c.get("year")) if x)
    if where:
        text += f" {where}."
    if c.get("pmid"):
        text += f" PMID: {c['pmid']}."
    if c.get("doi"):
        text += f" DOI: {c['doi']}."
    url = _safe_url(c.get("url"))
    if url:
        text += f" <{url}>" if markdown else f" {url}"
    return text


# --------------------------------------------------------------------------- page assets

CSS = """
.lbp-answer p { margin: 0 0 .6em 0; }
.lbp-answer p:last-child { margin-bottom: 0; }
.lbp-red-flag { border: 3px solid #b91c1c; background: #fef2f2; color: #7f1d1d; border-radius: 8px;
  padding: .6em .9em; margin: 0 0 .8em 0; }
.lbp-red-flag p { color: #7f1d1d; margin: .2em 0; }
.lbp-red-flag-title { font-weight: 700; font-size: 1.1em; text-transform: uppercase; letter-spacing: .02em; }
.lbp-notice { font-size: .9em; opacity: .85; }
.lbp-abstained { font-style: italic; }
a.lbp-cite { color: var(--link-text-color); font-weight: 600; text-decoration: none; border-radius: 3px; padding: 0 .1em; white-space: nowrap; }
a.lbp-cite:hover { text-decoration: underline; }
a.lbp-cite:focus-visible, .lbp-card:focus-visible, .lbp-card:focus { outline: 3px solid #2563eb; outline-offset: 2px; }
/* "clip" instead of Gradio's "hidden" keeps the page from scrolling sideways without
   breaking position: sticky for the sources panel. */
.gradio-container { overflow: clip !important; }
/* Gradio's hover rule outranks its checked rule: a hovered, chosen radio turned blank. */
input[type="radio"]:checked:hover, input[type="checkbox"]:checked:hover {
  background-color: var(--checkbox-background-color-selected) !important;
  border-color: var(--checkbox-border-color-selected) !important; }
#lbp-sources { position: sticky; top: .5rem; max-height: calc(100vh - 1rem); overflow-y: auto !important;
  padding-right: .3em; }
.lbp-sources h3 { font-size: 1em; margin: .2em 0 .6em 0; }
.lbp-turn { margin-bottom: 1em; }
.lbp-turn summary { cursor: pointer; font-weight: 600; margin-bottom: .5em; }
.lbp-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .7em .8em;
  margin: 0 0 .7em 0; background: var(--background-fill-secondary); scroll-margin-top: .5em; }
.lbp-card.lbp-flash { box-shadow: 0 0 0 3px #f59e0b; }
.lbp-card-title { font-size: 1em; margin: 0 0 .3em 0; line-height: 1.3; }
.lbp-n { color: var(--color-accent); font-weight: 700; }
.lbp-byline, .lbp-links, .lbp-badges { margin: .2em 0; font-size: .9em; }
.lbp-links a { margin-right: .8em; }
.lbp-badge { display: inline-block; font-size: .8em; line-height: 1.4; padding: .05em .55em; margin: 0 .35em .2em 0;
  border-radius: 999px; border: 1px solid currentColor; }
.lbp-badge-type { color: #1d4ed8; }
.lbp-species-human { color: #047857; }
.lbp-species-animal { color: #b45309; }
.lbp-species-mixed { color: #6d28d9; }
.lbp-badge-confidence { color: #475569; }
.lbp-passage { margin: .5em 0 0 0; padding: .4em .7em; border-left: 3px solid var(--border-color-accent);
  font-size: .92em; white-space: pre-wrap; }
.lbp-passage mark { background: #fde68a; color: #1f2937; padding: 0 .1em; border-radius: 2px; }
.lbp-note { font-size: .85em; font-style: italic; opacity: .8; margin: .3em 0 0 0; }
.lbp-empty { opacity: .8; }
.dark .lbp-badge-type { color: #93c5fd; }
.dark .lbp-species-human { color: #6ee7b7; }
.dark .lbp-species-animal { color: #fcd34d; }
.dark .lbp-species-mixed { color: #c4b5fd; }
.dark .lbp-badge-confidence { color: #cbd5e1; }
@media (max-width: 640px) {
  #lbp-sources { position: static; max-height: none; }
  #lbp-title h1 { font-size: 1.4em; }
  .lbp-red-flag-title { font-size: 1em; }
}
"""

# The evidence table. Rules start with #lbp-chat to outrank Gradio's borders on every table
# cell of a bot message. On a phone each row becomes a card whose cells carry their column
# name in ::before; the names come from classes, not data-label attributes, because the
# chat's HTML sanitizer drops data-* (and aria-*) attributes.
_EVIDENCE_LABELS = "\n".join(
    f'  #lbp-chat .lbp-ev-table tbody .lbp-ev-{key}::before {{ content: "{label}: "; }}'
    for key, label in EVIDENCE_COLUMNS
    if key not in ("n", "study")
)
# The card layout, used on phones and wherever the answer is narrower than the table needs
# (a container query on the table's own width).
_EVIDENCE_CARDS = f"""
  #lbp-chat .lbp-evidence {{ overflow-x: visible; }}
  #lbp-chat .lbp-ev-table {{ font-size: .88em; }}
  #lbp-chat .lbp-ev-table, #lbp-chat .lbp-ev-table caption, #lbp-chat .lbp-ev-table tbody,
  #lbp-chat .lbp-ev-table tr, #lbp-chat .lbp-ev-table th, #lbp-chat .lbp-ev-table td {{ display: block; width: auto; }}
  #lbp-chat .lbp-ev-table thead {{ position: absolute; width: 1px; height: 1px; overflow: hidden;
    clip-path: inset(50%); white-space: nowrap; }}
  #lbp-chat .lbp-ev-table tbody tr {{ border: 1px solid var(--border-color-primary); border-radius: 6px;
    padding: .35em .55em; margin: 0 0 .5em 0; }}
  #lbp-chat .lbp-ev-table tbody th, #lbp-chat .lbp-ev-table tbody td {{ border: none; padding: .12em 0;
    overflow-wrap: anywhere; }}
  #lbp-chat .lbp-ev-table tbody td:empty {{ display: none; }}
  #lbp-chat .lbp-ev-table tbody .lbp-ev-n, #lbp-chat .lbp-ev-table tbody .lbp-ev-study {{ display: inline;
    font-weight: 700; }}
  #lbp-chat .lbp-ev-table tbody .lbp-ev-n {{ margin-right: .3em; }}
  #lbp-chat .lbp-ev-result {{ min-width: 0; }}
  #lbp-chat .lbp-ev-table tbody td::before {{ font-weight: 600; opacity: .75; }}
{_EVIDENCE_LABELS}
"""
CSS += f"""
#lbp-chat .lbp-evidence {{ margin: .8em 0 .4em 0; max-width: 100%; overflow-x: auto; container-type: inline-size; }}
#lbp-chat .lbp-ev-table {{ width: 100%; border-collapse: collapse; border: none; margin: 0; font-size: .76em;
  line-height: 1.35; }}
#lbp-chat .lbp-ev-table caption {{ caption-side: top; text-align: left; font-weight: 700; font-size: 1.1em;
  padding: 0 0 .3em 0; }}
#lbp-chat .lbp-ev-count {{ font-weight: 400; opacity: .8; }}
#lbp-chat .lbp-ev-note {{ display: block; font-weight: 400; font-size: .9em; font-style: italic; opacity: .8; }}
#lbp-chat .lbp-ev-table tr {{ border: none; }}
#lbp-chat .lbp-ev-table th, #lbp-chat .lbp-ev-table td {{ border: none; border-bottom: 1px solid var(--border-color-primary);
  padding: .3em .25em; vertical-align: top; text-align: left; overflow-wrap: normal; word-break: normal; }}
#lbp-chat .lbp-ev-table thead th {{ font-weight: 600; border-bottom-width: 2px; }}
#lbp-chat .lbp-ev-table tbody th {{ font-weight: 600; }}
#lbp-chat .lbp-ev-n {{ white-space: nowrap; }}
/* Short cells wrap only between words; the long ones may break a long word, so the table
   always fits the answer's width and shares it out by content. */
#lbp-chat .lbp-ev-table td.lbp-ev-population, #lbp-chat .lbp-ev-table td.lbp-ev-comparison,
#lbp-chat .lbp-ev-table td.lbp-ev-result {{ overflow-wrap: anywhere; }}
#lbp-chat .lbp-ev-table td.lbp-ev-result {{ min-width: 5em; }}
#lbp-chat .lbp-ev-related {{ background: var(--background-fill-secondary); }}
#lbp-chat .lbp-ev-table .lbp-badge {{ margin: 0 .25em .1em 0; white-space: nowrap; }}
#lbp-chat .lbp-ev-table td.lbp-ev-population .lbp-badge {{ white-space: normal; }}
.lbp-ev-phase {{ color: #475569; }}
.lbp-dir {{ font-weight: 600; }}
.lbp-dir-benefit {{ color: #047857; }}
.lbp-dir-no-difference {{ color: #475569; }}
.lbp-dir-uncertain {{ color: #b45309; }}
.lbp-dir-harm {{ color: #b91c1c; }}
.lbp-dir-finding {{ color: #6d28d9; }}
.lbp-dir-other {{ color: #475569; }}
.lbp-ev-related-badge {{ color: #475569; border-style: dashed; }}
.dark .lbp-ev-phase, .dark .lbp-dir-no-difference, .dark .lbp-dir-other, .dark .lbp-ev-related-badge {{ color: #cbd5e1; }}
.dark .lbp-dir-benefit {{ color: #6ee7b7; }}
.dark .lbp-dir-uncertain {{ color: #fcd34d; }}
.dark .lbp-dir-harm {{ color: #fca5a5; }}
.dark .lbp-dir-finding {{ color: #c4b5fd; }}
@media (max-width: 640px) {{
{_EVIDENCE_CARDS}}}
@container (max-width: 36em) {{
{_EVIDENCE_CARDS}}}
"""

# Citation links jump to their card (opening a folded older answer) and move focus there, so
# keyboard users land on the source; capture phase so the chat's own link handling never runs.
HEAD = """
<script>
(() => {
  function showCard(id) {
    const card = document.getElementById(id);
    if (!card) return false;
    const folded = card.closest("details");
    if (folded && !folded.open) folded.open = true;
    card.scrollIntoView({ behavior: "smooth", block: "nearest" });
    card.focus({ preventScroll: true });
    card.classList.add("lbp-flash");
    setTimeout(() => card.classList.remove("lbp-flash"), 1600);
    return true;
  }
  document.addEventListener("click", (event) => {
    const link = event.target.closest ? event.target.closest("a.lbp-cite") : null;
    if (!link) return;
    const id = (link.getAttribute("href") || "").replace(/^#/, "");
    if (showCard(id)) { event.preventDefault(); event.stopPropagation(); }
  }, true);
})();
</script>
"""

COPY_JS = """
async (text) => {
  if (!text) return;
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}
"""

DOWNLOAD_JS = """
(markdown) => {
  if (!markdown) return;
  const blob = new Blob([markdown], { type: "text/markdown;charset=utf-8" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "lbp-conversation.md";
  document.body.appendChild(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}
"""
