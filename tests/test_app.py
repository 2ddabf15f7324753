"""Tests for app.py and the rendering it uses (assistant/web/webui.py and the modules it gathers).

Fast tests check the rendering helpers (escaping, ``[n]`` links, highlighting, exports).
Slow tests start the real app (``python app.py``) on a free port and talk to it the way
people and programs do: ``gradio_client`` on ``/ask``, ``/search`` and ``/chat``, twenty
conversations at once, the REST API (``/api/v1``) with urllib, and headless Chromium (the
system's, via Playwright) for the page itself. Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistant.web import evidence_table, webui
from assistant.web.feedback import FeedbackStore

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("LBP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_VARIABLES = ("LBP_USERNAME", "LBP_PASSWORD", "LBP_HOST", "LBP_PORT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")
"""Variables of app.py's address and login: the app under test gets only those a test sets."""
QUESTION = "Should people with acute low back pain stay active or rest in bed?"
RED_FLAG = "My back hurts and I have numbness in my groin and I cannot control my bladder"
PAYLOAD = (
    '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b> is walking good for back pain?'
)


def _citation(n: int, passage: str = "Staying active helps. Bed rest does not.", **extra: Any) -> dict[str, Any]:
    base = {
        "n": n,
        "doc_id": f"ref-{n}",
        "passage_id": f"ref-{n}#0",
        "title": f"Title {n}",
        "authors": ["Hagen KB", "Jamtvedt G", "Hilde G", "Winnem MF"],
        "journal": "Cochrane Database Syst Rev",
        "year": 2004,
        "pmid": "15266458",
        "doi": "10.1002/14651858.CD001254.pub2",
        "url": "https://pubmed.ncbi.nlm.nih.gov/15266458/",
        "study_type": "Cochrane review",
        "species": "human",
        "passage": passage,
        "quotes": ["Staying active helps."],
        "confidence": "high",
        "source_note": None,
    }
    return {**base, **extra}


def _answer(text: str, citations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    base = {"answer": text, "citations": citations, "abstained": False, "red_flag": False, "mode": "clinician"}
    return {**base, "query": "q", "notices": [], **extra}


def _row(n: int, **extra: Any) -> dict[str, Any]:
    """An ``EvidenceRow.to_dict()``."""
    base = {
        "n": n,
        "doc_id": f"ref-{n}",
        "study": "Hagen KB 2004",
        "design": "Cochrane review",
        "design_group": "review",
        "species": "human",
        "size": "11 studies",
        "population": "Adults with acute low back pain",
        "phase": "acute",
        "comparison": "advice to stay active vs bed rest",
        "result": "Staying active helps.",
        "passage_id": f"ref-{n}#0",
        "direction": "benefit",
        "related": False,
    }
    return {**base, **extra}


def _plain(html_text: str) -> str:
    return re.sub(r"<[^>]+>", "", html_text)


# --------------------------------------------------------------------------- rendering (fast)


def test_answer_links_each_known_marker_to_its_card() -> None:
    html_text = webui.render_answer(_answer("Stay active [22]. Rest less [3, 22]. Unknown [9].", [_citation(22)]), 2)
    assert html_text.count('href="#src-2-22"') == 2
    assert 'href="#src-2-3"' not in html_text and "[9]" in html_text
    assert _plain(html_text) == "Stay active [22]. Rest less [3, 22]. Unknown [9]."


def test_answer_text_and_passages_are_escaped() -> None:
    evil = '<script>alert(1)</script><img src=x onerror="x()">'
    cit = _citation(1, passage=f"{evil} Staying active helps.", title=evil, journal=evil, authors=[evil])
    rendered = webui.render_answer(_answer(f"{evil} [1]", [cit]), 1) + webui.render_sources(
        [{"question": evil, "mode": "clinician", "filters": {}, "answer": _answer(evil, [cit])}]
    )
    rendered += webui.render_user(evil)
    assert "<script" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered


def test_red_flag_paragraph_becomes_an_alert() -> None:
    html_text = webui.render_answer(
        _answer("Go to an emergency department now.\n\nExercise can wait.", [], red_flag=True), 1
    )
    assert html_text.index('role="alert"') < html_text.index("emergency") < html_text.index("</div>")
    assert html_text.index("</div>") < html_text.index("Exercise can wait")


def test_headed_paragraph_and_bullets() -> None:
    html_text = webui.render_answer(_answer("Study details:\nDesign: RCT [1].\n\n- one\n- two", [_citation(1)]), 1)
    assert "<strong>Study details:</strong><br>Design: RCT" in html_text
    assert "<ul><li>one</li><li>two</li></ul>" in html_text


@pytest.mark.parametrize(
    ("passage", "quote", "marked"),
    [
        ("Bed rest is not advised. Staying active helps.", "Staying active helps [22].", "Staying active helps"),
        ("Bed rest is not advised.  Staying\nactive  helps.", "staying active helps", "Staying\nactive  helps"),
        ("First point. People who stayed active recovered faster than those in bed.", "People stayed active and recovered faster than those in bed", "People who stayed active recovered faster than those in bed."),
    ],
)  # fmt: skip
def test_highlight_marks_the_quoted_sentence(passage: str, quote: str, marked: str) -> None:
    out = webui.highlight_passage(passage, [quote])
    assert re.findall(r"<mark>(.*?)</mark>", out, flags=re.S) == [marked]
    assert _plain(out) == passage


def test_highlight_ignores_unrelated_quotes_and_merges_overlaps() -> None:
    passage = "Walking helps. Yoga helps a little."
    assert "<mark>" not in webui.highlight_passage(passage, ["Surgery is outside scope."])
    out = webui.highlight_passage(passage, ["Walking helps", "helps. Yoga"])
    assert out.count("<mark>") == 1 and _plain(out) == passage


def test_sources_group_passages_of_one_reference_into_one_card() -> None:
    cits = [_citation(3, passage="A."), _citation(20), _citation(3, passage="B.")]
    conv = [
        {"question": "old", "mode": "clinician", "filters": {}, "answer": _answer("x [20]", [_citation(20)])},
        {"question": "new", "mode": "clinician", "filters": {}, "answer": _answer("y [3] [20]", cits)},
    ]
    html_text = webui.render_sources(conv)
    assert html_text.count('id="src-2-3"') == 1 and html_text.count('class="lbp-passage"') == 4
    assert html_text.index("Answer 2: new") < html_text.index("<details") < html_text.index("Answer 1: old")
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/15266458/"' in html_text
    assert 'href="https://doi.org/10.1002/14651858.CD001254.pub2"' in html_text
    assert "Hagen KB, Jamtvedt G, Hilde G et al." in html_text
    assert "Cochrane review" in html_text and "lbp-species-human" in html_text


def test_unsafe_links_are_dropped() -> None:
    card = webui.render_card([_citation(1, pmid="1 onclick=x", doi=None, url="javascript:alert(1)")], 1)
    assert "javascript:" not in card and "onclick" not in card and "<a " not in card


def test_filters_from_ui() -> None:
    assert webui.filters_from_ui(False, [], []) == {}
    assert webui.filters_from_ui(True, ["review", "other"], ["acute"]) == {
        "species": ["human"],
        "design_group": ["review", "other", "topic"],
        "lbp_phase": ["acute", "mixed"],
    }


def test_partial_answers_are_marked_as_streaming() -> None:
    answer = _answer("Walking helps [1]. Yoga may help [1].", [_citation(1)], notices=["Filtered."])
    partial = webui.render_answer(answer, 1, "Walking helps [1].")
    assert 'class="lbp-answer lbp-streaming"' in partial and "Filtered." not in partial
    done = webui.render_answer(answer, 1)
    assert 'class="lbp-answer"' in done and "Filtered." in done


def test_stream_prefixes_end_at_sentences_and_keep_markers() -> None:
    text = "Walking helps [1]. Yoga may help [2, 3].\n\nAsk a doctor."
    assert list(webui.stream_prefixes(text)) == ["Walking helps [1].", "Walking helps [1]. Yoga may help [2, 3].", text]
    assert list(webui.stream_prefixes("No end")) == ["No end"]


def test_history_and_exports() -> None:
    cits = [_citation(22), _citation(22, passage="Other part.")]
    answer = _answer("Stay active [22].", cits)
    conv = [{"question": "Bed rest?", "mode": "patient", "filters": {}, "answer": answer}]
    assert webui.history_for_ask(conv) == [
        {"role": "user", "content": "Bed rest?"},
        {"role": "assistant", "content": "Stay active [22]."},
    ]
    copied = webui.answer_with_references(answer)
    assert copied.startswith("Stay active [22].\n\nReferences\n22. Hagen KB")
    assert copied.count("\n22. ") == 1 and "PMID: 15266458." in copied
    md = webui.conversation_markdown(conv)
    assert md.startswith(f"# {webui.APP_TITLE}") and "## 1. Bed rest?" in md and "*Mode: patient*" in md
    assert "**References**" in md and md.count("\n22. ") == 1


def test_evidence_table_rows_are_escaped_linked_and_badged() -> None:
    evil = "<script>alert(1)</script> helps | a little [3]."
    rows = [
        _row(22),
        _row(3, study="<b>Evil</b> 2020", result=evil, direction="harm", related=True, species="rat", size=""),
    ]
    table = webui.render_evidence_table(rows, 2)
    assert "<script" not in table and "<b>" not in table
    assert (
        "“&lt;script&gt;alert(1)&lt;/script&gt; helps | a little " in table and "&lt;b&gt;Evil&lt;/b&gt; 2020" in table
    )
    assert table.count('<tr class="lbp-ev-row') == 2 and table.count('<th scope="col">') == 8
    assert '<caption>Evidence table <span class="lbp-ev-count">(2 studies)</span>' in table
    assert '<th scope="row" class="lbp-ev-study">Hagen KB 2004</th>' in table
    # [n] and the marker inside the quoted result link to the card like the answer's own links
    assert '<td class="lbp-ev-n"><a class="lbp-cite" href="#src-2-22" title="Source 22">[22]</a></td>' in table
    assert table.count('href="#src-2-3"') == 2
    assert '<span class="lbp-badge lbp-dir lbp-dir-benefit">Benefit</span>' in table
    assert '<span class="lbp-badge lbp-dir lbp-dir-harm">Harm</span>' in table
    related = table.split('<tr class="lbp-ev-row')[2]
    assert related.startswith(' lbp-ev-related"') and "lbp-ev-related-badge" in related and ">related</span>" in related
    assert "Cochrane review" in table and "Cochrane review, rat" in table and '<td class="lbp-ev-size"></td>' in table
    assert "related" not in table.split('<tr class="lbp-ev-row')[1]
    # a number without a card is not linked; an unknown direction gets a neutral badge
    other = webui.render_evidence_table([_row(5, direction="<mixed>")], 1, known=set())
    assert "lbp-cite" not in other and '<span class="lbp-badge lbp-dir lbp-dir-other">&lt;mixed&gt;</span>' in other


def test_evidence_table_shortens_long_populations() -> None:
    population = "Adults aged 18 to 65 with non-specific chronic low back pain for at least 12 weeks, recruited " * 2
    table = webui.render_evidence_table([_row(1, population=population, phase="chronic")], 1)
    shown = re.search(r'<td class="lbp-ev-population"><span title="([^"]*)">([^<]*)</span>', table)
    assert shown and shown.group(1) == " ".join(population.split())
    assert shown.group(2).endswith("…") and len(shown.group(2)) <= evidence_table.POPULATION_LIMIT
    assert '<span class="lbp-badge lbp-ev-phase">chronic</span>' in table
    short = webui.render_evidence_table([_row(1, phase="not applicable")], 1)
    assert '<td class="lbp-ev-population">Adults with acute low back pain</td>' in short


def test_answer_shows_the_evidence_table_only_when_finished() -> None:
    answer = _answer("Stay active [22]. Avoid bed rest [22].", [_citation(22)], evidence=[_row(22)])
    done = webui.render_answer(answer, 1)
    assert done.count('class="lbp-ev-table"') == 1
    assert done.index("Avoid bed rest") < done.index('class="lbp-evidence"')
    assert 'class="lbp-evidence"' not in webui.render_answer(answer, 1, "Stay active [22].")
    empties: list[dict[str, Any]] = [{}, {"evidence": []}]  # answers from before the table; without studies
    for empty in empties:
        assert "lbp-ev" not in webui.render_answer(_answer("Stay active [22].", [_citation(22)], **empty), 1)
    assert webui.render_evidence_table([], 1) == ""


def test_css_labels_every_evidence_column_on_phones() -> None:
    phone = webui.CSS[webui.CSS.rindex("@media (max-width: 640px)") :]
    for key, label in evidence_table.EVIDENCE_COLUMNS[2:]:
        assert f'.lbp-ev-{key}::before {{ content: "{label}: "; }}' in phone
    assert "lbp-ev-table tr" in phone and "display: block" in phone


def test_exports_carry_the_evidence_table() -> None:
    rows = [_row(22), _row(3, result="Pain fell | a bit\nlater.", comparison="", related=True)]
    answer = _answer("Stay active [22] [3].", [_citation(22), _citation(3)], evidence=rows)
    md = webui.conversation_markdown([{"question": "Bed rest?", "mode": "clinician", "filters": {}, "answer": answer}])
    lines = md.splitlines()
    start = lines.index("**Evidence table**")
    table = lines[start + 2 : lines.index("**References**") - 1]
    assert table[0] == "| Ref. | Study | Design | Size | Population and phase | Comparison | Main result | Direction |"
    assert table[1] == "|---|---|---|---|---|---|---|---|" and len(table) == 2 + len(rows)
    assert table[2] == (
        "| [22] | Hagen KB 2004 | Cochrane review | 11 studies | Adults with acute low back pain (acute) "
        "| advice to stay active vs bed rest | “Staying active helps.” | Benefit |"
    )
    assert table[3].endswith("| “Pain fell \\| a bit later.” | Benefit (related) |")
    assert lines.index("Stay active [22] [3].") < start
    copied = webui.answer_with_references(answer)
    text = copied.split("\n\n")
    assert text[0] == "Stay active [22] [3]." and text[2].startswith("References\n22. Hagen KB")
    assert text[1].splitlines() == [
        "Evidence table",
        "[22] Hagen KB 2004: Design: Cochrane review; Size: 11 studies; Population and phase: Adults with acute "
        "low back pain (acute); Comparison: advice to stay active vs bed rest; Main result: “Staying active helps.”; "
        "Direction: Benefit",
        "[3] Hagen KB 2004: Design: Cochrane review; Size: 11 studies; Population and phase: Adults with acute "
        "low back pain (acute); Main result: “Pain fell | a bit later.”; Direction: Benefit (related)",
    ]
    assert "Evidence table" not in webui.answer_with_references(_answer("Stay active [22].", [_citation(22)]))


# --------------------------------------------------------------------------- app.py handlers (in process)


class FakeAssistant:
    """Stands in for the Assistant so the handlers' plumbing is tested apart from answers."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def ask(self, question: str, history: Any = None, mode: str = "clinician", filters: Any = None) -> Any:
        from assistant.types import Answer, Citation, EvidenceRow

        self.calls.append({"question": question, "history": history, "mode": mode, "filters": filters})
        if self.fail:
            raise RuntimeError("index unavailable")
        c = _citation(1)
        cit = Citation(**{**c, "authors": tuple(c["authors"]), "quotes": tuple(c["quotes"])})
        row = EvidenceRow(**_row(1))
        text = "Walking helps [1]. Staying active helps [1]."
        return Answer(text, (cit,), False, False, mode, question, evidence=(row,))


@pytest.fixture(scope="module")
def app_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("lbp_app", ROOT / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def fake(app_module: Any, monkeypatch: pytest.MonkeyPatch) -> FakeAssistant:
    bot = FakeAssistant()
    monkeypatch.setattr(app_module, "get_assistant", lambda: bot)
    monkeypatch.setattr(app_module, "STREAM_PAUSE", 0)
    return bot


def test_respond_streams_then_stores_the_turn(app_module: Any, fake: FakeAssistant) -> None:
    before: list[dict[str, Any]] = []
    steps = list(app_module.respond(" Is walking good? ", before, "patient", True, [], ["chronic"], None))
    first, *middle, last = steps
    assert [m["role"] for m in first[0]] == ["user", "assistant"] and first[3] == ""
    assert "Searching the evidence" in first[0][1]["content"]
    assert len(middle) == 2  # one step per sentence, the last one complete
    assert "lbp-streaming" in middle[0][0][-1]["content"] and "lbp-streaming" not in middle[1][0][-1]["content"]
    assert "lbp-ev-table" not in middle[0][0][-1]["content"] and "lbp-ev-table" in middle[1][0][-1]["content"]
    chat, conversation, sources, _box, copied, markdown = last
    assert before == [] and len(conversation) == 1 and conversation[0]["question"] == "Is walking good?"
    assert 'href="#src-1-1"' in chat[1]["content"] and 'id="src-1-1"' in sources
    assert chat[1]["content"].count('<tr class="lbp-ev-row">') == 1
    assert conversation[0]["answer"]["evidence"][0]["study"] == "Hagen KB 2004"
    assert copied.startswith("Walking helps [1].") and "\nReferences\n1. " in copied
    assert "\n\nEvidence table\n[1] Hagen KB 2004: " in copied
    assert "## 1. Is walking good?" in markdown and "\n| [1] | Hagen KB 2004 |" in markdown
    assert fake.calls == [
        {
            "question": "Is walking good?",
            "history": [],
            "mode": "patient",
            "filters": {"species": ["human"], "lbp_phase": ["chronic", "mixed"]},
        }
    ]
    *_, again = app_module.respond("And yoga?", conversation, "clinician", False, [], [], None)
    assert fake.calls[1]["history"] == [
        {"role": "user", "content": "Is walking good?"},
        {"role": "assistant", "content": "Walking helps [1]. Staying active helps [1]."},
    ]
    assert fake.calls[1]["filters"] is None and len(again[1]) == 2 and len(conversation) == 1


def test_respond_ignores_empty_and_puts_the_question_back_on_failure(app_module: Any, fake: FakeAssistant) -> None:
    import gradio as gr

    assert len(list(app_module.respond("   ", [], "clinician", False, [], [], None))) == 1
    fake.fail = True
    steps = []
    with pytest.raises(gr.Error, match="could not be answered: index unavailable"):
        for step in app_module.respond("Is walking good?", [], "clinician", False, [], [], None):
            steps.append(step)
    assert steps[-1][0] == [] and steps[-1][3] == "Is walking good?"
    with pytest.raises(gr.Error, match="mode must be one of"):
        list(app_module.respond("Is walking good?", [], "doctor", False, [], [], None))


def _stub_assistant(adapted: bool) -> Any:
    from types import SimpleNamespace

    manifest = {"model": "m", "counts": {"documents": 52}, "adaptation": {"applied": adapted}}
    return SimpleNamespace(
        index=SimpleNamespace(path="index", manifest=manifest),
        retriever=SimpleNamespace(settings=SimpleNamespace(query_encoder="auto")),
    )


def test_status_line_says_which_index_is_live(app_module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from assistant.config import Settings
    from assistant.web.service import AssistantService

    loading, building = threading.Event(), threading.Event()

    def loader(settings: Any, log: Any) -> Any:
        loading.wait(10)
        return _stub_assistant(settings.adapt)

    def builder(settings: Any) -> int:
        building.wait(10)
        return 0

    service = AssistantService(Settings.from_env(index_dir="/nonexistent/index"), loader, builder, quick_start=True)
    monkeypatch.setattr(app_module, "service", service)
    monkeypatch.setattr("assistant.web.service.needs_build", lambda settings: True)

    def status() -> tuple[bool, str, bool]:
        line, timer = app_module.index_status()
        return line["visible"], line["value"], timer.active

    service.start()
    visible, text, polling = status()
    assert visible and polling and text.startswith("Preparing the evidence index")
    loading.set()
    for _ in range(100):
        if service.ready:
            break
        time.sleep(0.02)
    visible, text, polling = status()
    assert visible and polling and "Answering from the base-model index" in text
    building.set()
    assert service.swapped.wait(10)
    assert status() == (False, "", False) and service.live == "adapted"


def test_like_and_comment_append_rows(app_module: Any, fake: FakeAssistant, tmp_path: Path, monkeypatch: Any) -> None:
    import gradio as gr

    store = FeedbackStore(tmp_path / "fb.sqlite3")
    monkeypatch.setattr(app_module, "feedback_store", store)
    *_, last = app_module.respond("Is walking good?", [], "patient", False, [], [], None)
    conversation = last[1]
    request = type("Request", (), {"session_hash": "abc"})()

    def like(index: int, liked: Any) -> Any:
        return app_module.on_like(
            conversation, gr.LikeData(None, {"index": index, "value": "", "liked": liked}), request
        )

    assert like(0, True)[2] is None and like(1, "")[2] is None  # a user message; a cleared rating
    _box, comment_box, pending, prompt = like(1, False)
    assert pending == {"turn": 1, "rating": -1} and "not helpful" in prompt and comment_box == ""
    assert app_module.on_comment("  ", pending, conversation, request)[2] is None
    app_module.on_comment("Missed the Cochrane review", pending, conversation, request)
    rows = store.rows()
    assert [(r["session_id"], r["turn"], r["rating"], r["comment"], r["mode"]) for r in rows] == [
        ("abc", 1, -1, "", "patient"),
        ("abc", 1, -1, "Missed the Cochrane review", "patient"),
    ]


# --------------------------------------------------------------------------- address and login (fast)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ("127.0.0.1", 7860)),
        ({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8000"}, ("0.0.0.0", 8000)),
        ({"LBP_HOST": "10.0.0.5", "LBP_PORT": "9000"}, ("10.0.0.5", 9000)),
        (
            {"LBP_HOST": "10.0.0.5", "LBP_PORT": "9000", "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8000"},
            ("10.0.0.5", 9000),
        ),
        ({"LBP_HOST": "", "LBP_PORT": "", "GRADIO_SERVER_NAME": "::", "GRADIO_SERVER_PORT": "8000"}, ("::", 8000)),
        ({"LBP_HOST": "10.0.0.5", "GRADIO_SERVER_PORT": "8000"}, ("10.0.0.5", 8000)),
        ({"GRADIO_SERVER_NAME": "0.0.0.0", "LBP_PORT": "9000"}, ("0.0.0.0", 9000)),
        ({"LBP_PORT": "1"}, ("127.0.0.1", 1)),
        ({"LBP_PORT": "65535"}, ("127.0.0.1", 65535)),
    ],
)
def test_server_address_prefers_lbp_then_gradio_variables(
    app_module: Any, environ: dict[str, str], expected: tuple[str, int]
) -> None:
    assert app_module.server_address(environ) == expected


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"LBP_PORT": "http"}, "LBP_PORT"),
        ({"LBP_PORT": "0"}, "LBP_PORT"),
        ({"LBP_PORT": "65536"}, "LBP_PORT"),
        ({"LBP_PORT": "-1"}, "LBP_PORT"),
        ({"LBP_PORT": "80.5", "GRADIO_SERVER_PORT": "8000"}, "LBP_PORT"),  # a bad LBP_PORT is not skipped
        ({"GRADIO_SERVER_PORT": "eighty"}, "GRADIO_SERVER_PORT"),
        ({"LBP_PORT": "", "GRADIO_SERVER_PORT": "99999"}, "GRADIO_SERVER_PORT"),
    ],
)
def test_a_bad_port_names_its_variable(app_module: Any, environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable}=.* is not a port number"):
        app_module.server_address(environ)


def test_login_needs_both_user_and_password(app_module: Any) -> None:
    assert app_module.login({}) is None
    assert app_module.login({"LBP_USERNAME": "", "LBP_PASSWORD": ""}) is None
    assert app_module.login({"LBP_USERNAME": "clinic", "LBP_PASSWORD": "s3cret"}) == ("clinic", "s3cret")
    assert app_module.login({"LBP_USERNAME": "clinic", "LBP_PASSWORD": "s3cret", "GRADIO_USERNAME": "x"}) == (
        "clinic",
        "s3cret",
    )
    for half in ({"LBP_USERNAME": "clinic"}, {"LBP_PASSWORD": "s3cret"}, {"LBP_USERNAME": "", "LBP_PASSWORD": "s"}):
        with pytest.raises(ValueError, match="set both LBP_USERNAME and LBP_PASSWORD"):
            app_module.login(half)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LBP_PORT": "http"}, "error: LBP_PORT='http' is not a port number"),
        ({"GRADIO_SERVER_PORT": "0"}, "error: GRADIO_SERVER_PORT='0' is not a port number"),
        ({"LBP_USERNAME": "clinic"}, "error: set both LBP_USERNAME and LBP_PASSWORD"),
    ],
)
def test_main_refuses_a_bad_port_or_half_a_login(
    app_module: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environ: dict[str, str],
    message: str,
) -> None:
    for name in SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    started: list[bool] = []
    monkeypatch.setattr(app_module.service, "start", lambda: started.append(True))
    assert app_module.main() == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "Serving on" not in err
    assert started == []  # nothing was loaded


# --------------------------------------------------------------------------- the running app (slow)


@dataclass(frozen=True)
class Server:
    url: str
    feedback_db: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, port_variable: str = "LBP_PORT", **env_extra: str) -> tuple[subprocess.Popen[bytes], Server]:
    """Start ``python app.py`` on a free port, given in ``port_variable`` (the only port variable set)."""
    port = _free_port()
    server = Server(f"http://127.0.0.1:{port}/", tmp / "feedback.sqlite3", tmp / "app.log")
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env.update({port_variable: str(port), "LBP_FEEDBACK_DB": str(server.feedback_db), "HF_HUB_OFFLINE": "1"})
    env.update(env_extra)
    with server.log.open("wb") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 300  # building a missing index takes about a minute
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{server.log.read_text()[-3000:]}")
        try:  # the server is up at once; health says 200 when the index is loaded
            with urllib.request.urlopen(server.url + "api/v1/health", timeout=2):
                return proc, server
        except OSError:  # not listening yet, or 503 while the index loads
            time.sleep(0.3)
    proc.kill()
    pytest.fail(f"app.py did not start:\n{server.log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    proc, srv = _start(tmp_path_factory.mktemp("app"))
    yield srv
    _stop(proc)


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    from gradio_client import Client

    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (make browser installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _request(url: str, body: Any = None, auth: tuple[str, str] | None = None) -> tuple[int, Any, bytes]:
    """(status, headers, body) of a GET, or of a JSON POST when ``body`` is given; errors too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _json(response: tuple[int, Any, bytes]) -> Any:
    status, headers, body = response
    assert headers["Content-Type"].startswith("application/json"), (status, body[:200])
    return json.loads(body)


def _markers(text: str) -> set[int]:
    return {int(n) for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", text) for n in re.findall(r"\d+", group)}


def _norm(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_ask_endpoint_returns_answers_with_checkable_citations(client: Any) -> None:
    result = client.predict(QUESTION, "clinician", None, None, api_name="/ask")
    assert not result["abstained"] and not result["red_flag"] and result["mode"] == "clinician"
    numbers = {c["n"] for c in result["citations"]}
    assert numbers and _markers(result["answer"]) == numbers
    assert "ref-22" in {c["doc_id"] for c in result["citations"]}  # the Cochrane review on bed rest
    for c in result["citations"]:
        assert c["title"] and c["passage"] and c["study_type"]
        for q in c["quotes"]:  # every quoted sentence is found, and highlighted, in its passage
            assert "<mark>" in webui.highlight_passage(c["passage"], [q]), (c["passage_id"], q)

    follow_up = client.predict(
        "And for chronic pain?",
        "patient",
        [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": result["answer"]}],
        {"species": ["human"]},
        api_name="/ask",
    )
    assert follow_up["mode"] == "patient" and follow_up["citations"]
    assert {c["species"] for c in follow_up["citations"]} == {"human"}


@pytest.mark.slow
def test_search_endpoint_and_bad_input(client: Any) -> None:
    from gradio_client.exceptions import AppError

    hits = client.predict("bed rest or staying active", 5, "hybrid", {"species": ["human"]}, api_name="/search")
    assert len(hits) == 5 and [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert all(h["metadata"]["species"] == "human" for h in hits)
    with pytest.raises(AppError, match="mode must be one of"):
        client.predict(QUESTION, "doctor", None, None, api_name="/ask")


@pytest.mark.slow
def test_rest_ask_gives_the_answer_of_the_cli(server: Server) -> None:
    response = _request(server.url + "api/v1/ask", {"question": QUESTION})
    assert response[0] == 200
    over_http = _json(response)
    # the CLI on the very index the server answers from
    index = _json(_request(server.url + "api/v1/health"))["index"]["path"]
    env = {**os.environ, "LBP_INDEX": index, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", QUESTION, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    from_cli = json.loads(proc.stdout)
    assert over_http["answer"] == from_cli["answer"] and over_http["answer"]
    numbers = [c["n"] for c in over_http["citations"]]
    assert numbers and numbers == [c["n"] for c in from_cli["citations"]]
    assert _markers(over_http["answer"]) == set(numbers)
    assert [c["passage_id"] for c in over_http["citations"]] == [c["passage_id"] for c in from_cli["citations"]]
    assert (over_http["abstained"], over_http["red_flag"], over_http["mode"]) == (False, False, "clinician")


@pytest.mark.slow
def test_rest_health_search_errors_and_schema(server: Server) -> None:
    response = _request(server.url + "api/v1/health")
    health = _json(response)
    assert response[0] == 200 and health["status"] == "ready"
    assert health["counts"]["documents"] >= 51 and health["counts"]["passages"] > health["counts"]["documents"]
    assert health["model"]["name"] and health["model"]["dimension"] == 384 and health["index"]["path"]

    response = _request(server.url + "api/v1/search", {"text": "bed rest or staying active", "k": 3})
    assert response[0] == 200 and [h["rank"] for h in _json(response)] == [1, 2, 3]
    response = _request(server.url + "api/v1/search", {"text": "bed rest or staying active", "k": 0})
    error = _json(response)
    assert response[0] == 400 and error["error"] == "bad_request"
    assert any(line.startswith("k:") for line in error["detail"]), error

    status, headers, page = _request(server.url + "docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"/openapi.json" in page
    schema = _json(_request(server.url + "openapi.json"))
    assert {"/api/v1/ask", "/api/v1/search", "/api/v1/health"} <= set(schema["paths"])


@pytest.mark.slow
def test_gradio_server_port_is_used_when_lbp_port_is_not_set(tmp_path: Path) -> None:
    proc, srv = _start(tmp_path, port_variable="GRADIO_SERVER_PORT")
    try:
        response = _request(srv.url + "api/v1/health")
        assert response[0] == 200 and _json(response)["status"] == "ready"
    finally:
        _stop(proc)
    assert f"Serving on {srv.url} " in srv.log.read_text()


@pytest.mark.slow
def test_chat_streams_the_answer_sentence_by_sentence(client: Any) -> None:
    job = client.submit(
        "Is exercise therapy effective for chronic low back pain?", "clinician", False, [], [], api_name="/chat"
    )
    final = job.result(timeout=60)
    shown = [_plain(out[0][-1]["content"][0]["text"]) for out in job.outputs() if isinstance(out[0], list) and out[0]]
    answers = [s for s in shown if "Searching the evidence" not in s]
    assert len(answers) >= 3, shown
    final_text = _norm(_plain(final[0][-1]["content"][0]["text"]))
    assert all(_norm(b).startswith(_norm(a)) for a, b in itertools.pairwise([*answers, final_text]))


@pytest.mark.slow
def test_twenty_concurrent_conversations_keep_their_own_history(server: Server) -> None:
    from gradio_client import Client

    topics = ["walking", "yoga", "pilates", "swimming", "McKenzie exercises"]

    def converse(i: int) -> tuple[int, list[str], str]:
        c = Client(server.url, verbose=False)
        asked = [f"Is {topics[i % 5]} good for back pain? (conversation {i})", f"And for how long? (conversation {i})"]
        out: tuple[Any, ...] = ()
        for q in asked:
            out = c.predict(q, "patient" if i % 2 else "clinician", False, [], [], api_name="/chat")
        chat, _sources, _box, _copy, markdown = out
        return i, [m["content"][0]["text"] for m in chat if m["role"] == "user"], markdown

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(converse, range(20)))
    for i, users, markdown in results:
        assert [u.count(f"(conversation {i})") for u in users] == [1, 1]
        assert markdown.count("## ") == 2, markdown
        assert set(re.findall(r"\(conversation (\d+)\)", markdown)) == {str(i)}


def _new_page(browser: Any, server: Server, requests: list[str], **options: Any) -> Any:
    context = browser.new_context(**options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
    page = context.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url)
    page.locator("#lbp-question textarea").wait_for()
    return page


def _wait_for_answer(page: Any, count: int, expected: str | None = None) -> Any:
    """Wait until ``count`` answers are shown and the last one is complete; return it."""
    page.wait_for_function(
        """([count, expected]) => {
            const answers = document.querySelectorAll('#lbp-chat .lbp-answer:not(.lbp-streaming)');
            if (answers.length < count) return false;
            const text = answers[answers.length - 1].innerText.split(/\\s+/).join(' ');
            return expected === null ? text.length > 0 : text.includes(expected);
        }""",
        arg=[count, expected],
        timeout=30_000,
    )
    return page.locator("#lbp-chat .lbp-answer:not(.lbp-streaming)").nth(count - 1)


def _screenshot(page: Any, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def _assert_local_only(requests: list[str]) -> None:
    hosts = {re.sub(r"^[a-z]+://([^/]+).*$", r"\1", u) for u in requests if not u.startswith(("data:", "blob:"))}
    assert hosts and all(h.startswith("127.0.0.1:") for h in hosts), hosts


@pytest.mark.slow
@pytest.mark.browser
def test_browser_answer_sources_feedback_and_exports(browser: Any, client: Any, server: Server) -> None:
    expected = client.predict(QUESTION, "clinician", None, None, api_name="/ask")
    requests: list[str] = []
    page = _new_page(browser, server, requests, viewport={"width": 1366, "height": 900})

    # Keyboard only: the question box has focus on load, Enter sends.
    assert page.evaluate("document.activeElement.closest('#lbp-question') !== null")
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    answer = _wait_for_answer(page, 1, _norm(expected["answer"].split("\n\n")[-1]))
    assert _norm(expected["answer"]) in _norm(answer.inner_text())

    # Every [n] is a link to a card that names the source and highlights the quoted passage.
    links = answer.locator("a.lbp-cite")
    numbers = {int(x) for x in links.evaluate_all("els => els.map(e => e.getAttribute('href').split('-').pop())")}
    assert numbers == {c["n"] for c in expected["citations"]}
    for c in expected["citations"]:
        card = page.locator(f"#lbp-sources #src-1-{c['n']}")
        assert card.is_visible()
        assert _norm(c["title"]) in _norm(card.inner_text())
        if c["quotes"]:
            assert card.locator("mark").count() >= 1
        if c["pmid"]:
            assert card.locator(f'a[href="https://pubmed.ncbi.nlm.nih.gov/{c["pmid"]}/"]').count() == 1
    assert page.locator("#lbp-sources .lbp-badge").count() >= 2

    # Under the answer, the evidence table: a real table with one row per study of "evidence".
    rows = answer.locator(".lbp-ev-table tbody tr")
    assert expected["evidence"] and rows.count() == len(expected["evidence"])
    assert rows.locator(".lbp-ev-n").all_inner_texts() == [f"[{r['n']}]" for r in expected["evidence"]]
    assert rows.first.evaluate("el => getComputedStyle(el).display") == "table-row"
    assert answer.locator(".lbp-ev-table caption").inner_text().startswith("Evidence table")
    _screenshot(page, "answer-desktop.png")

    # Tab reaches a citation; Enter moves focus to its card.
    for _ in range(120):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('lbp-cite')"):
            break
    else:
        pytest.fail("no citation link reachable with Tab")
    target = page.evaluate("document.activeElement.getAttribute('href').slice(1)")
    page.keyboard.press("Enter")
    page.wait_for_function("(id) => document.activeElement && document.activeElement.id === id", arg=target)

    # Copy answer with references; export the conversation as Markdown.
    page.click("#lbp-copy")
    page.wait_for_function("async () => (await navigator.clipboard.readText()).includes('References')")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(expected["answer"].split(" ")[0]) and "\nReferences\n" in copied
    with page.expect_download() as download:
        page.click("#lbp-export")
    markdown = Path(download.value.path()).read_text(encoding="utf-8")
    assert f"## 1. {QUESTION}" in markdown and "**References**" in markdown

    # Thumbs up, then a comment: two rows in the SQLite file.
    before = len(FeedbackStore(server.feedback_db))
    page.locator("#lbp-chat button[aria-label='Like']").last.click()
    comment = page.locator("#lbp-comment textarea")
    comment.wait_for(state="visible")
    comment.fill("Clear, and the <b>sources</b> check out")
    page.click("#lbp-send-comment")
    comment.wait_for(state="hidden")
    rows = FeedbackStore(server.feedback_db).rows()[before:]
    assert [(r["rating"], r["turn"], r["question"]) for r in rows] == [(1, 1, QUESTION)] * 2
    assert rows[1]["comment"] == "Clear, and the <b>sources</b> check out"
    assert {c["n"] for c in json.loads(rows[0]["citations"])} == {c["n"] for c in expected["citations"]}
    _assert_local_only(requests)
    page.context.close()


@pytest.mark.slow
@pytest.mark.browser
def test_browser_patient_mode_red_flag_and_html_payload(browser: Any, server: Server) -> None:
    requests: list[str] = []
    page = _new_page(browser, server, requests, viewport={"width": 1366, "height": 900})

    page.get_by_role("radio", name="Patient").check()
    page.get_by_text("Example questions for patients").wait_for()
    assert not page.get_by_text("Example questions for clinicians").is_visible()
    box = page.locator("#lbp-question textarea")
    box.fill(RED_FLAG)
    box.press("Enter")
    answer = _wait_for_answer(page, 1)
    alert = answer.locator(".lbp-red-flag[role='alert']")
    assert alert.is_visible()
    assert answer.evaluate("el => el.firstElementChild.classList.contains('lbp-red-flag')")
    assert "emergency" in alert.inner_text().lower()
    assert alert.evaluate("el => getComputedStyle(el).borderTopColor") == "rgb(185, 28, 28)"
    assert page.locator("#lbp-sources .lbp-red-flag").is_visible()
    _screenshot(page, "red-flag-patient.png")

    # An HTML/script payload is shown as the text it is, and nothing runs.
    box.fill(PAYLOAD)
    box.press("Enter")
    _wait_for_answer(page, 2)
    user = page.locator("#lbp-chat [data-testid='user']").last
    assert user.inner_text().strip() == PAYLOAD
    assert user.locator("img, script, b").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.locator("#lbp-sources img, #lbp-sources script").count() == 0
    _screenshot(page, "html-payload.png")
    _assert_local_only(requests)
    page.context.close()


@pytest.mark.slow
@pytest.mark.browser
def test_browser_phone_width(browser: Any, server: Server) -> None:
    requests: list[str] = []
    page = _new_page(browser, server, requests, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    box = page.locator("#lbp-question textarea")
    box.fill("Is yoga good for back pain?")
    page.locator("#lbp-ask").click()
    answer = _wait_for_answer(page, 1)
    card = page.locator("#lbp-sources .lbp-card").first
    card.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    chat_box, card_box = page.locator("#lbp-chat").bounding_box(), card.bounding_box()
    assert card_box["y"] > chat_box["y"] + chat_box["height"]  # sources stack below the chat
    assert card_box["x"] >= 0 and card_box["x"] + card_box["width"] <= 391

    # The evidence table: each row a labelled card inside the screen, its [n] linking to a source card.
    table = answer.locator(".lbp-ev-table")
    assert table.is_visible()
    rows = table.locator("tbody tr")
    assert rows.count() >= 1 and rows.first.evaluate("el => getComputedStyle(el).display") == "block"
    design = rows.first.locator(".lbp-ev-design")
    assert design.evaluate("el => getComputedStyle(el, '::before').content") == '"Design: "'
    for href in table.locator(".lbp-ev-n a.lbp-cite").evaluate_all("els => els.map(e => e.getAttribute('href'))"):
        assert page.locator(f"#lbp-sources {href}").count() == 1, href
    edges = table.locator("tbody tr, tbody th, tbody td").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect()).map(r => [r.left, r.right])"
    )
    assert all(left >= 0 and right <= 390 + 1 for left, right in edges), edges
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    table.scroll_into_view_if_needed()
    _screenshot(page, "evidence-phone.png")
    _screenshot(page, "phone.png", full_page=True)
    _assert_local_only(requests)
    page.context.close()


@pytest.mark.slow
def test_login_from_environment(tmp_path: Path) -> None:
    from gradio_client import Client

    proc, srv = _start(tmp_path, LBP_USERNAME="clinic", LBP_PASSWORD="s3cret-pass")
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(srv.url + "gradio_api/info", timeout=5)
        assert denied.value.code == 401
        c = Client(srv.url, auth=("clinic", "s3cret-pass"), verbose=False)
        hits = c.predict("walking", 2, "bm25", None, api_name="/search")
        assert len(hits) == 2

        # the REST API: HTTP Basic with the same credentials; health stays open for probes
        ask = srv.url + "api/v1/ask"
        question = {"question": "Is walking good for back pain?"}
        for auth in (None, ("clinic", "wrong"), ("someone", "s3cret-pass")):
            response = _request(ask, question, auth=auth)
            assert response[0] == 401 and _json(response)["error"] == "unauthorized", auth
            assert response[1]["WWW-Authenticate"].startswith("Basic")
        response = _request(ask, question, auth=("clinic", "s3cret-pass"))
        assert response[0] == 200 and _json(response)["citations"]
        response = _request(srv.url + "api/v1/health")
        assert response[0] == 200 and _json(response)["status"] == "ready"
    finally:
        _stop(proc)
    assert "Serving on http://127.0.0.1:" in srv.log.read_text()


@pytest.mark.slow
def test_server_log_has_no_debug_lines_or_deprecation_warnings(server: Server) -> None:
    assert _request(server.url + "api/v1/search", {"text": "walking", "k": 3, "retriever": "bm25"})[0] == 200
    assert _request(server.url + "api/v1/ask", {"question": "Is yoga good for back pain?", "mode": "patient"})[0] == 200
    log = server.log.read_text(encoding="utf-8", errors="replace")
    assert f"Serving on {server.url} " in log  # the log of this server, written to
    assert [line for line in log.splitlines() if "DEBUG" in line] == []
    assert "deprecated" not in log.lower()


# --------------------------------------------------------------------------- bounds and faults (slow)

H = {"role": "user", "content": "Is walking good?"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("ask", {"question": "x " * 5001}, "question: String should have at most 10000 characters"),
        ("ask", {"question": "walking?", "history": [H] * 101}, "history: List should have at most 100 items"),
        ("ask", {"question": "walking?", "history": [{**H, "content": "x" * 20001}]}, "history.0.content"),
        ("ask", {"question": "walking?", "history": [{**H, "content": "x" * 19000}] * 6}, "characters in all"),
        ("ask", {"question": "walking?", "filters": {f"k{i}": ["v"] for i in range(11)}}, "at most 10 items"),
        ("ask", {"question": "walking?", "filters": {"species": ["human"] * 21}}, "at most 20 items"),
        ("ask", {"question": "walking?", "filters": {"species": ["h" * 101]}}, "at most 100 characters"),
        ("search", {"text": "walking", "k": 51}, "k: Input should be less than or equal to 50"),
        ("search", {"text": "walking", "k": 0}, "k: Input should be greater than or equal to 1"),
        ("feedback", {"question": "q", "answer": "a", "rating": 1, "comment": "c" * 2001}, "comment: String should"),
        ("feedback", {"question": "q", "answer": "a", "rating": 5}, "rating: Input should be 1 or -1"),
    ],
)
def test_each_rest_limit_is_a_400_and_the_server_stays_up(server: Server, path: str, body: Any, says: str) -> None:
    status, _, raw = response = _request(server.url + f"api/v1/{path}", body)
    assert status == 400, raw[:300]
    detail = _json(response)["detail"]
    assert any(says in line for line in detail), detail
    assert _request(server.url + "api/v1/health")[0] == 200


@pytest.mark.slow
def test_oversized_bodies_are_refused_on_both_apis(server: Server) -> None:
    import http.client

    host, port = server.url.removeprefix("http://").rstrip("/").split(":")
    big = b'{"question": "' + b"x" * (300 * 1024) + b'"}'
    for path in ("/api/v1/ask", "/gradio_api/call/ask"):
        for chunked in (False, True):
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            headers = {"Content-Type": "application/json"}
            if chunked:
                conn.request("POST", path, body=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]),
                             headers=headers, encode_chunked=True)  # fmt: skip
            else:
                conn.request("POST", path, body=big, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            conn.close()
            assert response.status == 400, (path, chunked, payload[:200])
            assert b"larger than 256 KB" in payload
    assert _request(server.url + "api/v1/health")[0] == 200


@pytest.mark.slow
def test_each_gradio_limit_is_an_error_and_the_server_stays_up(client: Any, server: Server) -> None:
    from gradio_client.exceptions import AppError

    cases = [
        (("x " * 5001, "clinician", None, None), "/ask", "question has 10,001 characters"),
        (("walking?", "clinician", [H] * 101, None), "/ask", "history has 101 messages"),
        (("walking?", "clinician", [{**H, "content": "x" * 20001}], None), "/ask", "history message 0 has"),
        (("walking?", "clinician", None, {f"k{i}": ["v"] for i in range(11)}), "/ask", "filters has 11 keys"),
        (("walking", 0, "hybrid", None), "/search", "k must be from 1 to 50, not 0"),
        (("walking", 51, "hybrid", None), "/search", "k must be from 1 to 50, not 51"),
        (("walking", 5, "hybrid", {"species": ["h" * 101]}), "/search", "longer than 100 characters"),
    ]
    for args, api_name, says in cases:
        with pytest.raises(AppError, match=re.escape(says)):
            client.predict(*args, api_name=api_name)
    assert len(client.predict("walking", 2, "bm25", None, api_name="/search")) == 2


@pytest.mark.slow
def test_no_acknowledged_rating_is_lost_when_the_app_is_killed(tmp_path: Path) -> None:
    import signal
    import sqlite3
    import threading

    proc, srv = _start(tmp_path)
    acknowledged: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def rate(client_id: int) -> None:
        for k in itertools.count():
            if stop.is_set():
                return
            comment = f"client {client_id} rating {k}"
            body = {"question": "Is walking good?", "answer": "Yes [1].", "rating": 1, "comment": comment}
            try:
                status, _, raw = _request(srv.url + "api/v1/feedback", body)
            except OSError:  # the server died mid-request: not acknowledged
                return
            if status == 201:
                assert json.loads(raw)["id"] >= 1
                with lock:
                    acknowledged.append(comment)
            elif status >= 500 or status == 0:
                return

    threads = [threading.Thread(target=rate, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    while len(acknowledged) < 100:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-write, with 20 clients rating
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    with sqlite3.connect(srv.feedback_db) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    proc, srv = _start(tmp_path)  # the app starts again on the same store and keeps rating
    try:
        assert _request(srv.url + "api/v1/feedback", {"question": "q", "answer": "a", "rating": -1})[0] == 201
    finally:
        _stop(proc)
    stored = {r["comment"] for r in FeedbackStore(srv.feedback_db).rows()}
    missing = [c for c in acknowledged if c not in stored]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged ratings lost: {missing[:3]}"
    assert len(stored) >= len(acknowledged) + 1
