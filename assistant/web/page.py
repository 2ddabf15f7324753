"""The page around the chat: title and disclaimer, the filter choices and the filters they
give :meth:`Assistant.ask`, and the page's CSS, head script and button scripts. ``app.py`` lays
the page out with these; the rendered answers and cards come from the other modules.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.web.evidence_table import EVIDENCE_CSS

APP_TITLE = "Exercise for low back pain: evidence assistant"
DISCLAIMER = (
    "Answers are drawn from research summaries and cite their sources; they are not a diagnosis or a "
    "treatment plan. If your pain is severe, follows an injury, or comes with numbness, weakness, fever "
    "or problems passing urine, contact a doctor or emergency services."
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
# The evidence table's own rules, phone labels included.
CSS += EVIDENCE_CSS

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
