"""The REST API served beside the web UI: plain JSON over HTTP, its schema at ``/docs``.

::

    POST /api/v1/ask      {"question": ..., "mode": "clinician", "history": [...], "filters": {...}}
                          -> the ``ask --json`` object
    POST /api/v1/search   {"text": ..., "k": 10, "retriever": "hybrid", "filters": {...}}
                          -> the ``search --json`` list
    POST /api/v1/feedback {"question", "answer", "rating": 1 | -1, "comment", ...} -> 201 {"id"}
    GET  /api/v1/health   -> {"status": "ready" | "building" | "failed", "index", "model", "counts", ...}

Errors are JSON, ``{"error": <kind>, "detail": <message>}``, with a status code: 400 for bad
input (a malformed body, a value past one of the bounds of :mod:`assistant.limits`),
401 without valid credentials when a login is configured (HTTP Basic, the web app's user
name and password), 503 while the index is being built (with ``Retry-After``), 500 for a bug
(logged; the message names no internals). ``health`` needs no login, so load balancers can
probe it; it reveals no question or answer.

:func:`create_api` builds the FastAPI application; ``app.py`` mounts the Gradio UI on it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import __version__
from assistant.limits import (
    MAX_BODY_BYTES,
    MAX_COMMENT_CHARS,
    MAX_FILTER_CHARS,
    MAX_FILTER_KEYS,
    MAX_FILTER_VALUES,
    MAX_HISTORY_CHARS,
    MAX_HISTORY_MESSAGES,
    MAX_MESSAGE_CHARS,
    MAX_QUESTION_CHARS,
    MAX_SEARCH_K,
)
from assistant.web.feedback import Feedback, FeedbackStore
from assistant.web.service import AssistantService, NotReady

log = logging.getLogger("lbp.rest")

PREFIX = "/api/v1"
GUARDED_PREFIXES = (PREFIX, "/gradio_api/")
"""Paths whose request bodies are bounded by :class:`BodyLimit` (the UI's own API included)."""
RETRY_AFTER_SECONDS = 5

FilterKey = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
FilterValue = Annotated[str, Field(min_length=1, max_length=MAX_FILTER_CHARS)]
FilterValues = Annotated[list[FilterValue], Field(min_length=1, max_length=MAX_FILTER_VALUES)]
Filters = Annotated[
    dict[FilterKey, FilterValues],
    Field(
        max_length=MAX_FILTER_KEYS,
        description='Passage metadata filters, e.g. {"species": ["human"], "design_group": ["review"], '
        '"lbp_phase": ["chronic"]}. Values of one key are alternatives; keys must all match.',
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Message(_Body):
    role: Literal["user", "assistant", "system"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class AskRequest(_Body):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question")
    mode: Literal["clinician", "patient"] = Field("clinician", description="patient: plain language")
    history: list[Message] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_MESSAGES,
        description=f"earlier messages of the conversation, oldest first, for follow-ups "
        f"(at most {MAX_HISTORY_CHARS:,} characters in all)",
    )
    filters: Filters | None = None

    @field_validator("history")
    @classmethod
    def _history_size(cls, history: list[Message]) -> list[Message]:
        total = sum(len(m.content) for m in history)
        if total > MAX_HISTORY_CHARS:
            raise ValueError(f"{total:,} characters in all; at most {MAX_HISTORY_CHARS:,} are accepted")
        return history


class SearchRequest(_Body):
    text: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the query")
    k: int = Field(10, ge=1, le=MAX_SEARCH_K, description="how many passages")
    retriever: Literal["hybrid", "dense", "bm25"] = "hybrid"
    filters: Filters | None = None


class FeedbackRequest(_Body):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question that was answered")
    answer: str = Field(min_length=1, max_length=MAX_HISTORY_CHARS, description="the answer that is rated")
    rating: Literal[1, -1] = Field(description="1: helpful, -1: not helpful")
    comment: str = Field("", max_length=MAX_COMMENT_CHARS)
    mode: Literal["clinician", "patient"] = "clinician"
    citations: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list, max_length=100, description="the [n] numbers the answer cited"
    )
    session_id: str = Field("api", min_length=1, max_length=100, description="your id of the conversation")
    turn: int = Field(1, ge=1, le=10_000, description="the answer's number in that conversation")


class FeedbackOut(BaseModel):
    id: int = Field(description="the stored row's id")


class _Open(BaseModel):
    """Documented fields; more may be present."""

    model_config = ConfigDict(extra="allow")


class Citation(_Open):
    n: int = Field(description="the number used as [n] in the answer")
    doc_id: str
    passage_id: str
    title: str
    authors: list[str]
    journal: str | None = None
    year: int | None = None
    pmid: str | None = None
    doi: str | None = None
    url: str | None = None
    study_type: str | None = None
    species: str | None = None
    passage: str = Field(description="the cited passage")
    quotes: list[str] = Field(description="the sentences of the passage quoted in the answer")


class EvidenceRow(_Open):
    n: int
    doc_id: str
    study: str = Field(description="first author and year")
    design: str
    species: str
    size: str
    population: str
    phase: str
    comparison: str
    result: str = Field(description="the quoted main result")
    direction: str = Field(description="benefit, no difference, uncertain, harm or other")
    related: bool = Field(description="shown as related evidence (the question named something no study covers)")


class AnswerOut(_Open):
    answer: str = Field(description="the answer; each [n] is a citation")
    citations: list[Citation]
    evidence: list[EvidenceRow] = Field(description="one row per cited study")
    abstained: bool
    red_flag: bool
    mode: str
    query: str = Field(description="the standalone question answered (follow-ups rewritten)")
    notices: list[str]


class HitOut(_Open):
    rank: int
    doc_id: str
    passage_id: str
    score: float
    retriever: str
    components: dict[str, Any]
    text: str
    metadata: dict[str, Any]


class ErrorOut(BaseModel):
    error: str = Field(description="bad_request, unauthorized, not_found, building, failed or internal")
    detail: Any


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "bad input"},
    401: {"model": ErrorOut, "description": "login required"},
    503: {"model": ErrorOut, "description": "the index is being built (see Retry-After)"},
}


def _error(status: int, kind: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> list[str]:
    """One line per problem: ``body.k: Input should be less than or equal to 50``."""
    out = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            out.append(f"the body is not valid JSON: {(err.get('ctx') or {}).get('error', 'decode error')}")
            continue
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        out.append(f"{where}: {err.get('msg', 'invalid')}")
    return out


def basic_auth(user: str, password: str) -> Callable[[Request], None]:
    """A dependency that accepts ``Authorization: Basic`` with these credentials only."""
    expected = (user.encode(), password.encode())

    def check(request: Request) -> None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                name, _, secret = base64.b64decode(value, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                name, secret = b"", b""
            if hmac.compare_digest(name, expected[0]) & hmac.compare_digest(secret, expected[1]):
                return
        raise _Unauthorized

    return check


class _Unauthorized(Exception):
    pass


class _TooLarge(Exception):
    pass


TOO_LARGE = f"request body larger than {MAX_BODY_BYTES // 1024} KB"


class BodyLimit:
    """ASGI middleware: an API request body over ``limit`` bytes gets 400, whether it declares
    its length (refused before reading) or streams in chunks (refused once past the limit)."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _error(400, "bad_request", TOO_LARGE)(scope, receive, send)
            return
        received = 0
        started = overflow = replaced = False

        async def limited() -> Any:
            nonlocal received, overflow
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    overflow = True
                    raise _TooLarge
            return message

        async def tracked(message: Any) -> None:
            nonlocal started, replaced
            if overflow and not started:  # the app's own reply to the failed read: ours instead
                if not replaced:
                    replaced = True
                    await _error(400, "bad_request", TOO_LARGE)(scope, receive, send)
                return
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except _TooLarge:  # a streamed body past the limit, where the app let the error through
            if started or replaced:
                raise
            await _error(400, "bad_request", TOO_LARGE)(scope, receive, send)


def create_api(
    service: AssistantService, auth: tuple[str, str] | None = None, feedback: FeedbackStore | None = None
) -> FastAPI:
    """The FastAPI application with the ``/api/v1`` routes (mount the UI on it afterwards).

    Args:
        service: the assistant, loading or loaded.
        auth: (user, password): ask, search and feedback need HTTP Basic credentials.
        feedback: where ``POST /api/v1/feedback`` stores ratings (None: the route answers 404).
    """
    api = FastAPI(
        title="LBP exercise evidence assistant",
        version=__version__,
        description="Cited answers and passage search over the evidence on exercise therapy for low back "
        "pain. The web chat is at /; this API is for programs.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    guard = [Depends(basic_auth(*auth))] if auth else []

    api.add_middleware(BodyLimit)

    @api.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "bad_request", _validation_detail(exc))

    @api.exception_handler(_Unauthorized)
    async def _unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="lbp-assistant"'}
        return _error(401, "unauthorized", "valid credentials are required (HTTP Basic)", headers)

    @api.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == "building" else None
        return _error(503, exc.status, str(exc), headers)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if not request.url.path.startswith(PREFIX):  # the UI's own errors keep their form
            from fastapi.exception_handlers import http_exception_handler

            return await http_exception_handler(request, exc)
        if isinstance(exc.__cause__, _TooLarge):  # FastAPI wraps errors of reading the body
            return _error(400, "bad_request", TOO_LARGE)
        kind = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return _error(exc.status_code, kind, exc.detail)

    @api.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError) -> JSONResponse:
        return _error(400, "bad_request", str(exc))

    @api.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, "internal", "the request failed inside the server; the log has the details")

    @api.post(
        f"{PREFIX}/ask",
        dependencies=guard,
        response_model=None,
        responses={200: {"model": AnswerOut}, **_ERRORS},
        summary="A cited answer to a question",
        tags=["assistant"],
    )
    def ask(body: AskRequest) -> JSONResponse:
        """The ``python -m assistant ask --json`` object: the answer with [n] citations, the cited
        passages, the evidence table, and whether it abstained or raised a red flag."""
        assistant = service.get()
        history = [m.model_dump() for m in body.history] or None
        answer = assistant.ask(body.question, history=history, mode=body.mode, filters=body.filters or None)
        return JSONResponse(answer.to_dict())

    @api.post(
        f"{PREFIX}/search",
        dependencies=guard,
        response_model=None,
        responses={200: {"model": list[HitOut]}, **_ERRORS},
        summary="Search the evidence passages",
        tags=["assistant"],
    )
    def search(body: SearchRequest) -> JSONResponse:
        """The ``python -m assistant search --json`` list: passages best first, with scores and metadata."""
        hits = service.get().search(body.text, k=body.k, retriever=body.retriever, filters=body.filters or None)
        return JSONResponse([h.to_dict() for h in hits])

    @api.post(
        f"{PREFIX}/feedback",
        dependencies=guard,
        status_code=201,
        response_model=FeedbackOut,
        responses=_ERRORS,
        summary="Rate an answer",
        tags=["assistant"],
    )
    def rate(body: FeedbackRequest) -> FeedbackOut:
        """Store a rating (and an optional comment) of an answer in the app's feedback table, the
        same table as the chat's thumbs (``python -m assistant feedback export``). The row is
        committed before the response: a 201 means it is on disk."""
        if feedback is None:
            raise StarletteHTTPException(404, "this server keeps no feedback")
        row = Feedback(
            session_id=body.session_id,
            turn=body.turn,
            question=body.question,
            answer=body.answer,
            mode=body.mode,
            rating=body.rating,
            comment=body.comment,
            citations=[{"n": n} for n in body.citations],
        )
        return FeedbackOut(id=feedback.add(row))

    @api.get(f"{PREFIX}/health", summary="Status, index, model and counts", tags=["service"])
    def health() -> JSONResponse:
        """``status`` is ``ready``, ``building`` (503) or ``failed`` (503)."""
        data = service.health()
        status = 200 if data["status"] == "ready" else 503
        return JSONResponse(data, status_code=status)

    return api
