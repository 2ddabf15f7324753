"""The REST API served beside the web UI: plain JSON over HTTP, its schema at ``/docs``.

::

    POST /api/v1/ask      {"question": ..., "mode": "clinician", "history": [...], "filters": {...}}
                          -> the ``ask --json`` object
    POST /api/v1/search   {"text": ..., "k": 10, "retriever": "hybrid", "filters": {...}}
                          -> the ``search --json`` list
    POST /api/v1/feedback {"question", "answer", "rating": 1 | -1, "comment", "request_id", ...}
                          -> 201 {"id", "request_id"}
    GET  /api/v1/health   -> {"status": "ready" | "building" | "failed", "index", "model", "counts", ...}

Errors are JSON, ``{"error": <kind>, "detail": <message>}``, with a status code: 400 for bad
input (a malformed body, a value past one of the bounds of :mod:`assistant.limits`),
401 without valid credentials when a login is configured (HTTP Basic, the web app's user
name and password), 503 while the index is being built or the feedback database cannot be
reached (with ``Retry-After``), 500 for a bug (logged; the message names no internals).
``health`` needs no login, so load balancers can probe it; it reveals no question or answer.

:func:`create_api` builds the FastAPI application; ``app.py`` mounts the Gradio UI on it. The
request and response bodies are in :mod:`.schemas`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import __version__
from assistant.limits import MAX_BODY_BYTES
from assistant.web.feedback_rows import Feedback, FeedbackBackend, FeedbackUnavailable, new_request_id
from assistant.web.schemas import AnswerOut, AskRequest, ErrorOut, FeedbackOut, FeedbackRequest, HitOut, SearchRequest
from assistant.web.service import AssistantService, NotReady

log = logging.getLogger("lbp.rest")

PREFIX = "/api/v1"
GUARDED_PREFIXES = (PREFIX, "/gradio_api/")
"""Paths whose request bodies are bounded by :class:`BodyLimit` (the UI's own API included)."""
RETRY_AFTER_SECONDS = 5

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
    service: AssistantService, auth: tuple[str, str] | None = None, feedback: FeedbackBackend | None = None
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

    @api.exception_handler(FeedbackUnavailable)
    async def _feedback_unavailable(request: Request, exc: FeedbackUnavailable) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)  # the URL's password is masked
        detail = "the rating could not be stored just now; send it again with the same request_id"
        return _error(503, "feedback_unavailable", detail, {"Retry-After": str(RETRY_AFTER_SECONDS)})

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
        committed before the response: a 201 means it is stored. A ``request_id`` sent again
        stores nothing more: retry a request whose reply was lost with the same one."""
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
            request_id=str(body.request_id) if body.request_id else new_request_id(),
        )
        return FeedbackOut(id=feedback.add(row), request_id=row.request_id)

    @api.get(f"{PREFIX}/health", summary="Status, index, model and counts", tags=["service"])
    def health() -> JSONResponse:
        """``status`` is ``ready``, ``building`` (503) or ``failed`` (503)."""
        data = service.health()
        status = 200 if data["status"] == "ready" else 503
        return JSONResponse(data, status_code=status)

    return api
