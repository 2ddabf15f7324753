"""The REST API served beside the web UI: plain JSON over HTTP, its schema at ``/docs``.

::

    POST /api/v1/ask      {"question": ..., "mode": "clinician", "history": [...], "filters": {...}}
                          -> the ``ask --json`` object
    POST /api/v1/search   {"text": ..., "k": 10, "retriever": "hybrid", "filters": {...}}
                          -> the ``search --json`` list
    GET  /api/v1/health   -> {"status": "ready" | "building" | "failed", "index", "model", "counts", ...}

Errors are JSON, ``{"error": <kind>, "detail": <message>}``, with a status code: 400 for bad
input (a malformed body, a value out of bounds, a body larger than :data:`MAX_BODY_BYTES`),
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
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import __version__
from assistant.service import AssistantService, NotReady

log = logging.getLogger("lbp.rest")

PREFIX = "/api/v1"
MAX_BODY_BYTES = 256 * 1024
MAX_QUESTION_CHARS = 10_000
"""Longer questions are refused; the answerer itself reads the first 2,000 characters of a
question and says so in a notice."""
MAX_HISTORY_MESSAGES = 100
MAX_MESSAGE_CHARS = 20_000
MAX_FILTER_KEYS = 10
MAX_FILTER_VALUES = 20
MAX_FILTER_CHARS = 100
MAX_SEARCH_K = 50
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
        description="earlier messages of the conversation, oldest first, for follow-ups",
    )
    filters: Filters | None = None


class SearchRequest(_Body):
    text: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the query")
    k: int = Field(10, ge=1, le=MAX_SEARCH_K, description="how many passages")
    retriever: Literal["hybrid", "dense", "bm25"] = "hybrid"
    filters: Filters | None = None


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
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _error(400, "bad_request", TOO_LARGE)(scope, receive, send)
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        await self.app(scope, limited, send)


def create_api(service: AssistantService, auth: tuple[str, str] | None = None) -> FastAPI:
    """The FastAPI application with the ``/api/v1`` routes (mount the UI on it afterwards).

    Args:
        service: the assistant, loading or loaded.
        auth: (user, password): ask and search need HTTP Basic credentials.
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

    @api.get(f"{PREFIX}/health", summary="Status, index, model and counts", tags=["service"])
    def health() -> JSONResponse:
        """``status`` is ``ready``, ``building`` (503) or ``failed`` (503)."""
        data = service.health()
        status = 200 if data["status"] == "ready" else 503
        return JSONResponse(data, status_code=status)

    return api
