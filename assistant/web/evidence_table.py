"""The evidence table of an answer: its columns, the HTML table in the chat (with the CSS that
labels its cells on phones), and its rows as plain text and Markdown for the exports.

A row is ``EvidenceRow.to_dict()``; the table is rendered from the answer's ``evidence`` list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assistant.web.markup import cite_link, esc, link_citations, one_line, shorten

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
    phase = one_line(row.get("phase")).lower()
    return "" if phase in _NO_PHASE else _PHASE_WORDS.get(phase, phase)


def _design(row: Mapping[str, Any]) -> str:
    """The design, and the species when it is not human (``"Randomized trial, rat"``)."""
    design = one_line(row.get("design") or row.get("design_group"))
    species = one_line(row.get("species"))
    if species and species.lower() != "human":
        return f"{design}, {species}" if design else species
    return design


def _result(row: Mapping[str, Any]) -> str:
    """The quoted result on one line, without quotation marks of its own around it."""
    result = one_line(row.get("result"))
    if len(result) > 1 and result[0] in "\"“'" and result[-1] in "\"”'":
        result = result[1:-1].strip()
    return result


def _direction(row: Mapping[str, Any]) -> str:
    direction = one_line(row.get("direction")).lower()
    return DIRECTION_LABELS.get(direction, direction.capitalize() or DIRECTION_LABELS["finding"])


def evidence_cells(row: Mapping[str, Any]) -> dict[str, str]:
    """Plain one-line text of each :data:`EVIDENCE_COLUMNS` cell of one evidence row
    (``EvidenceRow.to_dict()``), for the text and Markdown exports."""
    population, phase = one_line(row.get("population")), _phase(row)
    result = _result(row)
    return {
        "n": f"[{row['n']}]",
        "study": one_line(row.get("study") or row.get("doc_id")),
        "design": _design(row),
        "size": one_line(row.get("size")),
        "population": f"{population} ({phase})" if population and phase else population or phase,
        "comparison": one_line(row.get("comparison")),
        "result": f"“{result}”" if result else "",
        "direction": _direction(row) + (" (related)" if row.get("related") else ""),
    }


def _evidence_row_html(row: Mapping[str, Any], turn: int, known: set[int]) -> str:
    n = int(row["n"])
    text = evidence_cells(row)
    population = one_line(row.get("population"))
    shown = shorten(population, POPULATION_LIMIT)
    who = [f'<span title="{esc(population)}">{esc(shown)}</span>' if shown != population else esc(population)]
    if _phase(row):
        who.append(f'<span class="lbp-badge lbp-ev-phase">{esc(_phase(row))}</span>')
    comparison = text["comparison"]
    compared = shorten(comparison, COMPARISON_LIMIT)
    slug = one_line(row.get("direction")).lower()
    slug = slug.replace(" ", "-") if slug in DIRECTION_LABELS else "other"
    direction = f'<span class="lbp-badge lbp-dir lbp-dir-{slug}">{esc(_direction(row))}</span>'
    if row.get("related"):
        direction += f' <span class="lbp-badge lbp-ev-related-badge" title="{esc(RELATED_NOTE)}">related</span>'
    result = _result(row)
    inner = {
        "n": cite_link(turn, n, f"[{n}]") if n in known else f"[{n}]",
        "study": esc(text["study"]),
        "design": esc(text["design"]),
        "size": esc(text["size"]),
        "population": " ".join(x for x in who if x),
        "comparison": f'<span title="{esc(comparison)}">{esc(compared)}</span>'
        if compared != comparison
        else esc(comparison),
        "result": f"“{link_citations(esc(result), turn, known)}”" if result else "",
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
# The table's rules; page.CSS carries them.
EVIDENCE_CSS = f"""
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
