"""The web app: ``python app.py`` serves a Gradio chat over :meth:`assistant.Assistant.ask`,
and beside it the REST API of :mod:`assistant.web.rest` (``/api/v1/ask``, ``/api/v1/search``,
``/api/v1/health``, schema at ``/docs``), in one process: FastAPI with the UI mounted on it.

This file only adapts the assistant to Gradio: per-session state, streaming, feedback,
exports and the Gradio ``/ask`` and ``/search`` endpoints. Rendering lives in
:mod:`assistant.web.webui`, ratings in :mod:`assistant.web.feedback`, loading in
:mod:`assistant.web.service`; answers come from the assistant. The server answers at once; the
index loads (or, on a first run, builds) in the background, and until it is ready the chat
says so and the REST API answers 503.

Environment (``LBP_*`` wins over Gradio's variable when both are set):

- ``LBP_HOST``, else ``GRADIO_SERVER_NAME``, else ``127.0.0.1``;
- ``LBP_PORT``, else ``GRADIO_SERVER_PORT``, else ``7860``;
- ``LBP_USERNAME`` and ``LBP_PASSWORD`` (both set: a login page for the UI, HTTP Basic for
  the REST API);
- ``LBP_FEEDBACK_DB``: a SQLite file (default ``feedback/feedback.sqlite3``) or a
  ``postgresql://`` URL that replicas share (docs/deploy.md), plus the ``LBP_INDEX`` /
  ``LBP_CORPUS`` of the assistant.

Analytics are off, nothing is shared, and the page loads no fonts or scripts from elsewhere.
"""

import os

# Before gradio is imported: its import and launch read these.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from assistant.limits import MAX_QUESTION_CHARS, LimitError, check_k, check_question, check_request
from assistant.web import webui
from assistant.web.feedback import Feedback, FeedbackUnavailable, open_feedback_store
from assistant.web.service import AssistantService, NotReady

log = logging.getLogger("lbp.app")

MODES = ("clinician", "patient")
CONCURRENCY = 4  # questions answered at once; more wait in Gradio's queue
STREAM_PAUSE = 0.04  # seconds between streamed sentences
SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
THEME = gr.themes.Default(primary_hue="blue", font=SYSTEM_FONTS, font_mono=MONO_FONTS)

CLINICIAN_EXAMPLES = [
    "Is exercise therapy effective for chronic low back pain?",
    "Should people with acute low back pain stay active or rest in bed?",
    "How does motor control exercise compare with other exercise?",
    "Does exercise prevent recurrences of low back pain?",
    "What do animal studies show about exercise and intervertebral discs?",
]
PATIENT_EXAMPLES = [
    "What exercises can help my back pain?",
    "Should I rest in bed when my back hurts?",
    "Is yoga good for back pain?",
    "Will exercise stop my back pain coming back?",
]
CHAT_API_DESCRIPTION = (
    "The web chat: one message of this session's conversation (the server keeps the history per client "
    "session). Returns the chat as HTML messages, the sources panel, the cleared question box, the last "
    "answer with references, and the conversation as Markdown. Programs usually want /ask."
)
THINKING = '<p class="lbp-notice">Searching the evidence…</p>'

service = AssistantService()
feedback_store = open_feedback_store()


def get_assistant() -> Any:
    """The one :class:`~assistant.Assistant` of this process; :class:`gr.Error` while it loads."""
    try:
        return service.get()
    except NotReady as exc:
        raise gr.Error(str(exc), title="Not ready yet") from exc


def _bounded(check: Any, *args: Any) -> None:
    """Run a bound of :mod:`assistant.limits`; past it, a Gradio error naming it."""
    try:
        check(*args)
    except LimitError as exc:
        raise gr.Error(str(exc), title="Request too large") from exc


def _mode(mode: str) -> str:
    mode = (mode or "clinician").strip().lower()
    if mode not in MODES:
        raise gr.Error(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


# --------------------------------------------------------------------------- chat


def respond(
    message: str,
    conversation: list[dict[str, Any]],
    mode: str,
    human_only: bool,
    designs: list[str],
    phases: list[str],
    request: gr.Request,
) -> Iterator[tuple[Any, ...]]:
    """Answer ``message`` in this session's conversation, streaming the answer sentence by sentence.

    Yields values for: chatbot, conversation state, sources panel, question box,
    copy text, Markdown export.
    """
    question = (message or "").strip()
    skip = gr.skip()
    if not question:
        yield skip, skip, skip, "", skip, skip
        return
    mode = _mode(mode)
    _bounded(check_question, question)
    shown = webui.chat_messages(conversation)
    shown.append({"role": "user", "content": webui.render_user(question)})
    yield [*shown, {"role": "assistant", "content": THINKING}], skip, skip, "", skip, skip

    filters = webui.filters_from_ui(human_only, designs, phases)
    try:
        answer = get_assistant().ask(
            question, history=webui.history_for_ask(conversation), mode=mode, filters=filters or None
        )
    except gr.Error:  # not ready yet: the question goes back into the box
        yield webui.chat_messages(conversation), skip, skip, question, skip, skip
        raise
    except Exception as exc:  # put the question back for a retry; the traceback goes to the log
        log.exception("ask failed for session %s", getattr(request, "session_hash", "?"))
        yield webui.chat_messages(conversation), skip, skip, question, skip, skip
        raise gr.Error(f"Sorry, the question could not be answered: {exc}") from exc
    data = answer.to_dict()
    turn = {"question": question, "mode": mode, "filters": filters, "answer": data}
    updated = [*conversation, turn]
    number = len(updated)
    sources = webui.render_sources(updated)
    for prefix in webui.stream_prefixes(data["answer"]):
        yield (
            [*shown, {"role": "assistant", "content": webui.render_answer(data, number, prefix)}],
            skip,
            sources,
            skip,
            skip,
            skip,
        )
        time.sleep(STREAM_PAUSE)
    yield (
        webui.chat_messages(updated),
        updated,
        sources,
        skip,
        webui.answer_with_references(data),
        webui.conversation_markdown(updated),
    )


def new_conversation() -> tuple[Any, ...]:
    """Empty chat, state, sources, exports; hide the comment box."""
    return [], [], webui.render_sources([]), "", "", gr.update(visible=False), None


def index_status() -> tuple[Any, Any]:
    """The status line and whether to keep polling: shown while no index is loaded, while the
    base-model index of a quick start is live (until the adapted one is swapped in), and when
    loading failed; hidden once the final index is live."""
    health = service.health()
    stage = webui.esc(health["stage"])
    if health["status"] == "failed":
        return gr.update(value=f"**The evidence index could not be loaded.** {stage}", visible=True), gr.Timer(
            active=False
        )
    if health["status"] == "building":
        text = (
            f"Preparing the evidence index ({health.get('seconds', 0):.0f} s so far; "
            f"the first start takes about half a minute): {stage}"
        )
        return gr.update(value=text, visible=True), gr.Timer(active=True)
    if health.get("live") == "base" and service.quick_start and not service.swapped.is_set():
        text = (
            "Answering from the base-model index while the index adapted to this corpus is built "
            "(about 2 minutes on a first run); it replaces this one when ready."
        )
        return gr.update(value=text, visible=True), gr.Timer(active=True)
    if health.get("live") == "base" and "failed" in health["stage"]:
        return gr.update(value=stage, visible=True), gr.Timer(active=False)
    return gr.update(value="", visible=False), gr.Timer(active=False)


def switch_mode(mode: str) -> tuple[Any, Any]:
    """Show the example questions of the chosen audience."""
    return gr.update(visible=mode != "patient"), gr.update(visible=mode == "patient")


# --------------------------------------------------------------------------- feedback


def _record(conversation: list[dict[str, Any]], number: int, rating: int, comment: str, session: str) -> None:
    turn = conversation[number - 1]
    rating_row = Feedback(
        session_id=session,
        turn=number,
        question=turn["question"],
        answer=turn["answer"]["answer"],
        mode=turn["mode"],
        rating=rating,
        comment=comment,
        citations=turn["answer"]["citations"],
        filters=turn["filters"],
    )  # a new request_id: each click is one rating
    try:
        feedback_store.add(rating_row)
    except FeedbackUnavailable as exc:
        log.error("rating not saved: %s", exc)
        raise gr.Error("The rating could not be saved just now; please try again.", title="Not saved") from None


def on_like(conversation: list[dict[str, Any]], data: gr.LikeData, request: gr.Request) -> tuple[Any, ...]:
    """Store a thumbs up/down at once, then offer a comment box for it."""
    index = data.index if isinstance(data.index, int) else data.index[0]
    number = index // 2 + 1
    if index % 2 == 0 or not 1 <= number <= len(conversation) or data.liked not in (True, False):
        return gr.update(visible=False), gr.skip(), None, gr.skip()
    rating = 1 if data.liked else -1
    _record(conversation, number, rating, "", request.session_hash or "")
    word = "helpful" if rating > 0 else "not helpful"
    prompt = f"Thanks: answer {number} marked **{word}**. Anything to add? (optional)"
    return gr.update(visible=True), "", {"turn": number, "rating": rating}, prompt


def on_comment(
    comment: str, pending: dict[str, Any] | None, conversation: list[dict[str, Any]], request: gr.Request
) -> tuple[Any, ...]:
    """Store the comment with the rating it belongs to (a new row)."""
    text = (comment or "").strip()
    if pending and text and pending["turn"] <= len(conversation):
        _record(conversation, pending["turn"], pending["rating"], text, request.session_hash or "")
        gr.Info("Thank you, your comment was saved.")
    return gr.update(visible=False), "", None


# --------------------------------------------------------------------------- API


def ask(
    question: str,
    mode: str = "clinician",
    history: list[dict[str, str]] | None = None,
    filters: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Answer a question about exercise therapy for low back pain, with numbered citations.

    Args:
        question: the question.
        mode: "clinician" or "patient" (plain language).
        history: earlier messages, [{"role": "user"|"assistant", "content": str}, ...], for follow-ups.
        filters: passage metadata filters, e.g.
            {"species": ["human"], "design_group": ["review"], "lbp_phase": ["chronic"]}.

    Returns:
        {"answer", "citations", "evidence", "abstained", "red_flag", "mode", "query", "notices", ...}; each
        [n] in "answer" is the citation whose "n" is n; "evidence" has one row per cited study
        (study, design, size, population, phase, comparison, quoted result, direction, related).
    """
    if not (question or "").strip():
        raise gr.Error("question is empty")
    _bounded(check_request, question.strip(), history, filters)
    answer = get_assistant().ask(question.strip(), history=history or None, mode=_mode(mode), filters=filters or None)
    result: dict[str, Any] = answer.to_dict()
    return result


def search(
    text: str, k: int = 10, retriever: str = "hybrid", filters: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """Search the evidence passages (no answer composed).

    Args:
        text: the query.
        k: how many passages (1-50; others are refused).
        retriever: "hybrid", "dense" or "bm25".
        filters: passage metadata filters, as for /ask.

    Returns:
        Hits best first: {"rank", "doc_id", "passage_id", "score", "retriever", "components", "text", "metadata"}.
    """
    if not (text or "").strip():
        raise gr.Error("text is empty")
    if retriever not in ("hybrid", "dense", "bm25"):
        raise gr.Error(f"retriever must be hybrid, dense or bm25, not {retriever!r}")
    _bounded(check_question, text.strip(), "text")
    _bounded(check_k, int(k))
    _bounded(check_request, "", None, filters)
    hits = get_assistant().search(text.strip(), k=int(k), retriever=retriever, filters=filters or None)
    return [h.to_dict() for h in hits]


# --------------------------------------------------------------------------- page

with gr.Blocks(title=webui.APP_TITLE, analytics_enabled=False) as demo:
    gr.Markdown(f"# {webui.APP_TITLE}\n{webui.DISCLAIMER}", elem_id="lbp-title")
    status_line = gr.Markdown("", visible=False, elem_id="lbp-status")
    status_timer = gr.Timer(2.0)
    conversation = gr.State([])
    pending_feedback = gr.State(None)
    with gr.Row(equal_height=True):
        with gr.Column(scale=3, min_width=320):
            with gr.Row(equal_height=False):
                mode = gr.Radio(
                    [("Clinician", "clinician"), ("Patient", "patient")],
                    value="clinician",
                    label="Answer for",
                    info="Patient answers use plain language.",
                    elem_id="lbp-mode",
                    scale=1,
                    min_width=220,
                )
                with gr.Accordion("Filters", open=False, elem_id="lbp-filters"), gr.Column(min_width=220):
                    human_only = gr.Checkbox(False, label="Human studies only", elem_id="lbp-human-only")
                    designs = gr.CheckboxGroup(
                        list(webui.DESIGN_CHOICES), label="Study types", info="None ticked: all.", elem_id="lbp-designs"
                    )
                    phases = gr.CheckboxGroup(
                        list(webui.PHASE_CHOICES),
                        label="Pain duration",
                        info="None ticked: all. Studies of mixed groups are kept.",
                        elem_id="lbp-phases",
                    )
            chatbot = gr.Chatbot(
                label="Conversation",
                elem_id="lbp-chat",
                height="72vh",
                min_height=520,
                render_markdown=False,
                sanitize_html=True,
                buttons=[],
                feedback_options=("Like", "Dislike"),
                placeholder="Ask a question below, or pick an example.",
            )
            with gr.Row():
                question = gr.Textbox(
                    label="Your question",
                    show_label=False,
                    placeholder="Ask about exercise for low back pain, then press Enter",
                    lines=1,
                    max_lines=6,
                    scale=5,
                    autofocus=True,
                    max_length=MAX_QUESTION_CHARS,
                    elem_id="lbp-question",
                )
                ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="lbp-ask")
            with gr.Group(visible=False, elem_id="lbp-feedback") as feedback_box:
                feedback_prompt = gr.Markdown("Anything to add? (optional)")
                comment = gr.Textbox(
                    label="Comment", placeholder="What was good or wrong?", lines=2, elem_id="lbp-comment"
                )
                comment_btn = gr.Button("Send comment", size="sm", elem_id="lbp-send-comment")
            with gr.Row():
                copy_btn = gr.Button("Copy answer with references", size="sm", elem_id="lbp-copy")
                export_btn = gr.Button("Export conversation (Markdown)", size="sm", elem_id="lbp-export")
                clear_btn = gr.Button("New conversation", size="sm", elem_id="lbp-clear")
            copy_text = gr.Textbox(label="Answer with references", visible=False, elem_id="lbp-copy-text")
            export_md = gr.Textbox(label="Conversation as Markdown", visible=False, elem_id="lbp-export-md")
            with gr.Column(visible=True) as clinician_examples:
                gr.Examples(CLINICIAN_EXAMPLES, inputs=[question], label="Example questions for clinicians")
            with gr.Column(visible=False) as patient_examples:
                gr.Examples(PATIENT_EXAMPLES, inputs=[question], label="Example questions for patients")
        with gr.Column(scale=2, min_width=300):
            sources = gr.HTML(webui.render_sources([]), label="Sources", elem_id="lbp-sources", js_on_load=None)

    gr.api(ask, api_name="ask", concurrency_id="answer")
    gr.api(search, api_name="search", concurrency_limit=2 * CONCURRENCY)
    chat_inputs = [question, conversation, mode, human_only, designs, phases]
    chat_outputs = [chatbot, conversation, sources, question, copy_text, export_md]
    question.submit(
        respond,
        chat_inputs,
        chat_outputs,
        api_name="chat",
        api_description=CHAT_API_DESCRIPTION,
        concurrency_id="answer",
    )
    ask_btn.click(respond, chat_inputs, chat_outputs, api_visibility="private", concurrency_id="answer")
    mode.change(switch_mode, mode, [clinician_examples, patient_examples], api_visibility="private", queue=False)
    clear_btn.click(
        new_conversation,
        None,
        [chatbot, conversation, sources, copy_text, export_md, feedback_box, pending_feedback],
        api_visibility="private",
        queue=False,
    )
    chatbot.clear(
        new_conversation,
        None,
        [chatbot, conversation, sources, copy_text, export_md, feedback_box, pending_feedback],
        api_visibility="private",
        queue=False,
    )
    chatbot.like(
        on_like, [conversation], [feedback_box, comment, pending_feedback, feedback_prompt], api_visibility="private"
    )
    comment_btn.click(
        on_comment,
        [comment, pending_feedback, conversation],
        [feedback_box, comment, pending_feedback],
        api_visibility="private",
    )
    comment.submit(
        on_comment,
        [comment, pending_feedback, conversation],
        [feedback_box, comment, pending_feedback],
        api_visibility="private",
    )
    status_timer.tick(index_status, None, [status_line, status_timer], api_visibility="private", queue=False)
    demo.load(index_status, None, [status_line, status_timer], api_visibility="private", queue=False)
    copy_btn.click(None, copy_text, None, js=webui.COPY_JS, api_visibility="private")
    export_btn.click(None, export_md, None, js=webui.DOWNLOAD_JS, api_visibility="private")

demo.queue(default_concurrency_limit=CONCURRENCY)

UI_OPTIONS: dict[str, Any] = {
    "theme": THEME,
    "css": webui.CSS,
    "head": webui.HEAD,
    "footer_links": ["api", "settings"],
    "enable_monitoring": False,
    "run_history": False,
    "mcp_server": False,
    "pwa": False,
    "ssr_mode": False,
}


def server_address(environ: Any = os.environ) -> tuple[str, int]:
    """(host, port): ``LBP_HOST``/``LBP_PORT``, else ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``,
    else 127.0.0.1:7860. A port that is not a number from 1 to 65535 raises ValueError."""
    host = environ.get("LBP_HOST") or environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    name = "LBP_PORT" if environ.get("LBP_PORT") else "GRADIO_SERVER_PORT"
    text = environ.get(name) or "7860"
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{name}={text!r} is not a port number (1-65535)")
    return host, int(text)


def login(environ: Any = os.environ) -> tuple[str, str] | None:
    """(user, password) when both ``LBP_USERNAME`` and ``LBP_PASSWORD`` are set; ValueError when one is."""
    user, password = environ.get("LBP_USERNAME"), environ.get("LBP_PASSWORD")
    if bool(user) != bool(password):
        raise ValueError("set both LBP_USERNAME and LBP_PASSWORD, or neither")
    return (user, password) if user and password else None


def create_server(auth: tuple[str, str] | None = None, host: str = "127.0.0.1", port: int = 7860) -> Any:
    """The FastAPI application: the REST API, with the Gradio UI mounted at ``/``."""
    from assistant.web.rest import create_api

    api = create_api(service, auth, feedback_store)
    return gr.mount_gradio_app(
        api, demo, path="", server_name=host, server_port=port, auth=auth, show_error=True, **UI_OPTIONS
    )


def main() -> int:
    """Serve the UI and the REST API at once; the index loads (or builds) in the background."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port = server_address()
        auth = login()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    server = create_server(auth, host, port)
    service.start()
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    print(f"Feedback goes to {feedback_store.describe()}", file=sys.stderr)
    print(f"Serving on http://{shown}:{port}/ (REST API: /api/v1, schema: /docs)", file=sys.stderr, flush=True)
    uvicorn.run(server, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
