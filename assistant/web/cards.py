"""The sources of an answer: one card per reference (title, byline, badges, links, and each
cited passage with the quoted sentences highlighted), the sources panel of a conversation, and
the one-line reference of the exports. Pure functions, no Gradio.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from assistant.web.markup import CITE_RE, RED_FLAG_TITLE, Turn, card_id, esc, shorten

SOURCES_PLACEHOLDER = (
    '<p class="lbp-empty">Sources appear here. Every <strong>[n]</strong> in an answer links to its card: '
    "who wrote it, where it was published, and the passage the answer quotes.</p>"
)

_WORD_RE = re.compile(r"\w+")
_PMID_RE = re.compile(r"^\d{1,9}$")


def _spans(passage: str, quote_: str) -> list[tuple[int, int]]:
    """Where ``quote_`` occurs in ``passage``: exact, then ignoring case and spacing, then the
    passage sentence sharing most words with it (at least 60 %)."""
    quote_ = quote_.strip()
    if not quote_:
        return []
    # Answers may add a trailing [n] or drop the final period; match the words themselves.
    core = CITE_RE.sub("", quote_).strip().rstrip(".!?;: ").strip()
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
        head = f"Answer {i}: {esc(shorten(turn['question']))}"
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


def reference_text(c: Mapping[str, Any], markdown: bool = True) -> str:
    """One citation (``Citation.to_dict()``) as a reference line: authors, title, journal and
    year, PMID, DOI and its web address (in ``<...>`` for Markdown)."""
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
