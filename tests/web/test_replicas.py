"""Two app replicas (``python app.py`` on two ports) over one read-only index folder and one
PostgreSQL server, as docs/deploy.md sets them up behind a load balancer.

Under concurrent load on both, with some ratings retried on the other replica (as a balancer
does after a lost reply), every acknowledged rating is stored exactly once, and two-turn
conversations whose turns land on different replicas each keep their own context.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from postgres_server import PASSWORD, PostgresServer, free_port

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 20
RATINGS_PER_CLIENT = 10
SERVER_VARIABLES = ("LBP_USERNAME", "LBP_PASSWORD", "LBP_HOST", "LBP_PORT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")
TOPICS = ("yoga", "walking", "swimming", "tai chi")
SWIMMING_THEN_PILATES = ("Does swimming help chronic low back pain?", "Does Pilates help chronic low back pain?")
YOGA_THEN_PILATES = ("Is yoga good for back pain?", "Is Pilates good for back pain?")


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _start(log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env={**env, "LBP_PORT": str(port)}, stdout=out, stderr=out
        )
    return proc, f"http://127.0.0.1:{port}/"


def _fingerprint(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``folder``: whether anything wrote there."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:  # 200 once the index is loaded
            with urllib.request.urlopen(url + "api/v1/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"app.py did not get ready:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def replicas(
    postgres: PostgresServer, lbp_index_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], str, list[Path], dict[str, Any]]]:
    """(the two replicas' URLs, their LBP_FEEDBACK_DB, their logs, the index before they started)."""
    index_before = _fingerprint(lbp_index_dir)
    database = postgres.new_database()
    tmp = tmp_path_factory.mktemp("replicas")
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env.update(
        {"LBP_INDEX": str(lbp_index_dir), "LBP_QUICK_START": "0", "LBP_FEEDBACK_DB": database, "HF_HUB_OFFLINE": "1"}
    )
    logs = [tmp / "replica-a.log", tmp / "replica-b.log"]
    started = [_start(log, env) for log in logs]  # both start at once
    try:
        for (proc, url), log in zip(started, logs, strict=True):
            _wait_ready(proc, url, log)
        yield [url for _, url in started], database, logs, index_before
    finally:
        for proc, _ in started:
            proc.terminate()
        for proc, _ in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _rate(urls: list[str], client: int) -> list[tuple[str, int, int]]:
    """One client's ratings, alternating replicas; every third is sent again to the other
    replica with the same request_id. Returns (request_id, replica, row id) per acknowledged reply."""
    acknowledged = []
    for k in range(RATINGS_PER_CLIENT):
        key = str(uuid.uuid4())
        body = {
            "question": f"Client {client} question {k}?",
            "answer": "Staying active helps [1].",
            "rating": 1 if k % 2 else -1,
            "comment": f"client {client} rating {k}",
            "session_id": f"client-{client}",
            "turn": k + 1,
            "citations": [1],
            "request_id": key,
        }
        sends = [(client + k) % 2] + ([(client + k + 1) % 2] if k % 3 == 0 else [])
        for replica in sends:
            status, reply = _post(urls[replica] + "api/v1/feedback", body)
            assert status == 201, reply
            assert reply["request_id"] == key
            acknowledged.append((key, replica, int(reply["id"])))
    return acknowledged


def _converse(urls: list[str], first: str, follow_up: str, first_on: int) -> dict[str, Any]:
    """A two-turn conversation, each turn on another replica (the history travels with it)."""
    status, one = _post(urls[first_on] + "api/v1/ask", {"question": first, "mode": "patient"})
    assert status == 200, one
    history = [{"role": "user", "content": first}, {"role": "assistant", "content": one["answer"]}]
    status, two = _post(
        urls[1 - first_on] + "api/v1/ask", {"question": follow_up, "mode": "patient", "history": history}
    )
    assert status == 200, two
    return {"first": first, "follow_up": follow_up, "query": two["query"]}


@pytest.mark.slow
def test_two_replicas_share_one_feedback_table_and_keep_conversations_apart(
    replicas: tuple[list[str], str, list[Path], dict[str, Any]], lbp_index_dir: Path
) -> None:
    import psycopg

    urls, database, logs, index_before = replicas
    conversations: list[tuple[str, str, int]] = [
        (f"Is {topic} good for back pain?", "How often should I do it?", i % 2) for i, topic in enumerate(TOPICS)
    ]
    conversations += [(SWIMMING_THEN_PILATES[0], "And Pilates?", 0), (YOGA_THEN_PILATES[0], "And Pilates?", 1)]
    with ThreadPoolExecutor(CLIENTS + len(conversations)) as pool:
        rated = [pool.submit(_rate, urls, client) for client in range(CLIENTS)]
        talked = [pool.submit(_converse, urls, *c) for c in conversations]
        acknowledged = [a for f in rated for a in f.result()]
        answers = [f.result() for f in talked]

    # Every acknowledged rating is stored exactly once; a retry answered the first row's id.
    ids_by_key: dict[str, set[int]] = {}
    for key, _, row_id in acknowledged:
        ids_by_key.setdefault(key, set()).add(row_id)
    assert len(ids_by_key) == CLIENTS * RATINGS_PER_CLIENT
    assert len(acknowledged) > len(ids_by_key)  # there were retries
    assert {replica for _, replica, _ in acknowledged} == {0, 1}
    assert all(len(ids) == 1 for ids in ids_by_key.values()), "a retry got another row id"
    with psycopg.connect(database) as conn:
        counts = dict(conn.execute("SELECT request_id, count(*) FROM feedback GROUP BY request_id").fetchall())
        total = conn.execute("SELECT count(*), count(DISTINCT id), count(DISTINCT request_id) FROM feedback").fetchone()
        stored = dict(conn.execute("SELECT request_id, id FROM feedback").fetchall())
    assert counts == dict.fromkeys(ids_by_key, 1)
    assert total == (len(ids_by_key),) * 3
    assert stored == {key: next(iter(ids)) for key, ids in ids_by_key.items()}

    # Each follow-up was rewritten from its own conversation, not another one's.
    for answer in answers:
        query = answer["query"].lower()
        if answer["follow_up"] == "And Pilates?":
            expected = dict([SWIMMING_THEN_PILATES, YOGA_THEN_PILATES])[answer["first"]]
            assert answer["query"] == expected
            continue
        own = next(t for t in TOPICS if t in answer["first"])
        assert own in query and not any(t in query for t in TOPICS if t != own), answer

    # The replicas name the database without its password, and only read the shared index.
    for log in logs:
        text = log.read_text()
        assert "Feedback goes to postgresql://lbp:***@127.0.0.1:" in text
        assert PASSWORD not in text and "Traceback" not in text
    assert _fingerprint(lbp_index_dir) == index_before
