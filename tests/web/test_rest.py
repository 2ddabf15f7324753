"""The REST API (assistant/web/rest.py, schemas.py) in process, with a stand-in assistant: status codes, JSON
errors, bounds, login and schema. The running app's REST answers are tested in test_app.py."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.limits import MAX_QUESTION_CHARS, MAX_SEARCH_K
from assistant.types import Answer, Citation, Hit, Passage
from assistant.web import rest
from assistant.web.service import AssistantService, NotReady


class StubIndex:
    def __init__(self) -> None:
        self.path = "index"
        self.manifest = {"model": "m", "dimension": 3, "counts": {"documents": 2, "passages": 3}, "adaptation": {}}


class StubAssistant:
    """Records the calls; answers with one citation."""

    def __init__(self) -> None:
        self.index = StubIndex()
        self.retriever = type("R", (), {"settings": type("S", (), {"query_encoder": "auto"})()})()
        self.calls: list[dict[str, Any]] = []
        self.fail = False

    def ask(self, question: str, history: Any = None, mode: str = "clinician", filters: Any = None) -> Answer:
        self.calls.append({"question": question, "history": history, "mode": mode, "filters": filters})
        if self.fail:
            raise RuntimeError("secret internal detail")
        cite = Citation(1, "ref-1", "ref-1#0", "Title", ("A B",), "J", 2001, None, None, None, "RCT", "human", "P.")
        return Answer("Walking helps [1].", (cite,), False, False, mode, question)

    def search(self, text: str, k: int = 10, retriever: str = "hybrid", filters: Any = None) -> list[Hit]:
        self.calls.append({"text": text, "k": k, "retriever": retriever, "filters": filters})
        return [Hit(Passage("ref-1#0", "ref-1", "Walking."), 0.5, 1, retriever)][:k]


def _service(assistant: StubAssistant | None, gate: threading.Event | None = None) -> AssistantService:
    def loader(settings: Any, log: Any) -> Any:
        if gate is not None:
            gate.wait(10)
        if assistant is None:
            raise RuntimeError("corpus/references.json line 3: broken")
        return assistant

    service = AssistantService(settings=object(), loader=loader, quick_start=False)  # type: ignore[arg-type]
    service.start()
    return service


@pytest.fixture()
def stub() -> StubAssistant:
    return StubAssistant()


@pytest.fixture()
def client(stub: StubAssistant) -> Iterator[TestClient]:
    service = _service(stub)
    service.wait(10)
    with TestClient(rest.create_api(service)) as c:
        yield c


def test_ask_and_search_return_the_cli_json(client: TestClient, stub: StubAssistant) -> None:
    history = [{"role": "user", "content": "Is walking good?"}, {"role": "assistant", "content": "Yes [1]."}]
    r = client.post(
        "/api/v1/ask",
        json={"question": "  And yoga?  ", "mode": "patient", "history": history, "filters": {"species": ["human"]}},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["answer"] == "Walking helps [1]." and body["citations"][0]["n"] == 1 and body["mode"] == "patient"
    assert stub.calls[-1] == {
        "question": "And yoga?",
        "history": history,
        "mode": "patient",
        "filters": {"species": ["human"]},
    }
    r = client.post("/api/v1/search", json={"text": "walking", "k": 1, "retriever": "bm25"})
    assert r.status_code == 200 and [h["doc_id"] for h in r.json()] == ["ref-1"]
    assert stub.calls[-1] == {"text": "walking", "k": 1, "retriever": "bm25", "filters": None}


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("ask", {"question": ""}, "question: String should have at least 1 character"),
        ("ask", {"question": "   "}, "question: String should have at least 1 character"),
        ("ask", {"question": "x" * (MAX_QUESTION_CHARS + 1)}, "question: String should have at most"),
        ("ask", {"question": "walking?", "mode": "doctor"}, "mode: Input should be 'clinician' or 'patient'"),
        ("ask", {"question": "walking?", "history": [{"role": "bot", "content": "x"}]}, "history.0.role"),
        ("ask", {"question": "walking?", "history": [{"role": "user", "content": "x"}] * 101}, "history: List should"),
        ("ask", {"question": "walking?", "history": [{"role": "user", "content": "x" * 20001}]}, "history.0.content"),
        ("ask", {"question": "walking?", "filters": {"species": []}}, "filters.species: List should have at least 1"),
        ("ask", {"question": "walking?", "filters": {f"k{i}": ["v"] for i in range(11)}}, "filters: Dictionary should"),
        ("ask", {"question": "walking?", "filters": {"species": ["h" * 101]}}, "filters.species.0"),
        ("ask", {"question": "walking?", "filters": {"bad key!": ["x"]}}, "filters.bad key!.[key]"),
        ("ask", {"question": "walking?", "temperature": 0}, "temperature: Extra inputs are not permitted"),
        ("ask", {"question": 5}, "question: Input should be a valid string"),
        ("ask", ["walking?"], "Input should be a valid dictionary"),
        ("search", {"text": "walking", "k": 0}, "k: Input should be greater than or equal to 1"),
        ("search", {"text": "walking", "k": 51}, "k: Input should be less than or equal to 50"),
        ("search", {"text": "walking", "k": "ten"}, "k: Input should be a valid integer"),
        ("search", {"text": "walking", "retriever": "splade"}, "retriever: Input should be"),
        ("search", {}, "text: Field required"),
    ],
)
def test_bad_input_is_a_400_that_names_the_field(client: TestClient, path: str, body: Any, says: str) -> None:
    r = client.post(f"/api/v1/{path}", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_request"
    assert any(says in line for line in r.json()["detail"]), r.json()


def test_malformed_and_oversized_bodies(client: TestClient) -> None:
    r = client.post("/api/v1/ask", content=b'{"question": "walk', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"][0]
    big = b'{"question": "' + b"x" * (rest.MAX_BODY_BYTES + 10) + b'"}'
    r = client.post("/api/v1/ask", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json() == {"error": "bad_request", "detail": rest.TOO_LARGE}

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once past the limit
        yield b'{"question": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}'

    r = client.post("/api/v1/ask", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"] == rest.TOO_LARGE
    assert client.get("/api/v1/health").status_code == 200  # still serving


def test_a_failure_inside_is_a_500_without_internals(stub: StubAssistant) -> None:
    stub.fail = True
    service = _service(stub)
    service.wait(10)
    with TestClient(rest.create_api(service), raise_server_exceptions=False) as c:
        r = c.post("/api/v1/ask", json={"question": "walking?"})
        assert r.status_code == 500 and r.json()["error"] == "internal"
        assert "secret" not in r.text and "Traceback" not in r.text


def test_503_with_retry_after_while_building_then_200() -> None:
    gate = threading.Event()
    service = _service(StubAssistant(), gate)
    with TestClient(rest.create_api(service)) as c:
        r = c.post("/api/v1/ask", json={"question": "walking?"})
        assert r.status_code == 503 and r.json()["error"] == "building" and r.headers["retry-after"] == "5"
        assert c.post("/api/v1/search", json={"text": "walking"}).status_code == 503
        health = c.get("/api/v1/health")
        assert health.status_code == 503 and health.json()["status"] == "building"
        gate.set()
        service.wait(10)
        assert c.post("/api/v1/ask", json={"question": "walking?"}).status_code == 200
        health = c.get("/api/v1/health").json()
        assert health["status"] == "ready" and health["counts"] == {"documents": 2, "passages": 3}
        assert health["live"] == "base" and health["model"]["name"] == "m"


def test_a_failed_load_is_a_503_that_says_why() -> None:
    service = _service(None)
    with pytest.raises(NotReady, match="could not be loaded"):
        service.wait(10)
    with TestClient(rest.create_api(service)) as c:
        r = c.post("/api/v1/ask", json={"question": "walking?"})
        assert r.status_code == 503 and r.json()["error"] == "failed" and "line 3: broken" in r.json()["detail"]
        assert "retry-after" not in r.headers
        assert c.get("/api/v1/health").json()["status"] == "failed"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_login_protects_ask_and_search_not_health(stub: StubAssistant) -> None:
    service = _service(stub)
    service.wait(10)
    with TestClient(rest.create_api(service, auth=("clinic", "s3cret"))) as c:
        for headers in ({}, _basic("clinic", "wrong"), _basic("other", "s3cret"), {"Authorization": "Basic !!"}):
            r = c.post("/api/v1/ask", json={"question": "walking?"}, headers=headers)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Basic")
        assert c.post("/api/v1/search", json={"text": "walking"}).status_code == 401
        assert (
            c.post("/api/v1/ask", json={"question": "walking?"}, headers=_basic("clinic", "s3cret")).status_code == 200
        )
        assert c.get("/api/v1/health").status_code == 200
    assert len(stub.calls) == 1


def test_schema_documents_the_routes_and_bodies(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/v1/ask", "/api/v1/search", "/api/v1/health"} <= set(schema["paths"])
    ask = schema["paths"]["/api/v1/ask"]["post"]
    assert ask["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/AnswerOut")
    assert {"400", "401", "503"} <= set(ask["responses"])
    answer = schema["components"]["schemas"]["AnswerOut"]["properties"]
    assert {"answer", "citations", "evidence", "abstained", "red_flag"} <= set(answer)
    assert schema["components"]["schemas"]["SearchRequest"]["properties"]["k"]["maximum"] == MAX_SEARCH_K
    assert client.get("/api/v1/ask").status_code == 405
