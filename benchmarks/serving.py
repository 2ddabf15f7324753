"""Serving under load: concurrent two-turn conversations through the REST API and through
Gradio's queue (``gradio_client``), against one ``python app.py`` on a built index.

    .venv/bin/python benchmarks/serving.py                     # 60 sessions, ~1 min here
    .venv/bin/python benchmarks/serving.py --sessions 20 --index index/

Each session asks a question, then a follow-up with the first turn as history. All sessions
start at once (one thread each). Reports requests/s over the whole burst, p50 and p95
latency per request, failures, and the latency of one request alone (warm). Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.coldstart import _stop, _wait_http
from benchmarks.common import PYTHON, REPO_ROOT, child_env, free_port

QUESTIONS = [
    ("Is yoga effective for chronic low back pain?", "And Pilates?"),
    ("Should people with acute low back pain stay active or rest in bed?", "What about walking?"),
    ("Does exercise prevent recurrences of low back pain?", "How long does the effect last?"),
    ("How does motor control exercise compare with other exercise?", "And McKenzie?"),
]

Ask = Callable[[str, list[dict[str, str]]], dict[str, Any]]


def _percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _burst(ask: Ask, sessions: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []

    def session(i: int) -> None:
        first, follow = QUESTIONS[i % len(QUESTIONS)]
        history: list[dict[str, str]] = []
        for text in (first, follow):
            t = time.perf_counter()
            try:
                answer = ask(text, history)
            except Exception as exc:  # counted, not raised: the burst goes on
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            latencies.append(time.perf_counter() - t)
            history = [*history, {"role": "user", "content": text}, {"role": "assistant", "content": answer["answer"]}]

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        list(pool.map(session, range(sessions)))
    wall = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "failures": len(failures),
        "failure_examples": failures[:3],
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1) if wall else None,
        "p50_ms": round(1000 * _percentile(latencies, 0.5), 1) if latencies else None,
        "p95_ms": round(1000 * _percentile(latencies, 0.95), 1) if latencies else None,
    }


def _single(ask: Ask, runs: int = 10) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        ask(QUESTIONS[0][0], [])
        times.append(time.perf_counter() - t)
    return round(1000 * _percentile(times, 0.5), 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--index", type=Path, default=REPO_ROOT / "index")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "speed" / "serving.json")
    args = parser.parse_args(argv)
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="lbp-serving-") as tmp:
        env = child_env(LBP_PORT=str(port), LBP_INDEX=str(args.index), LBP_FEEDBACK_DB=f"{tmp}/feedback.sqlite3")
        log = Path(tmp) / "app.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen([PYTHON, "app.py"], cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            if not _wait_http(url + "api/v1/health", proc, time.perf_counter() + 600):
                print(log.read_text()[-2000:], file=sys.stderr)
                return 1

            def rest(text: str, history: list[dict[str, str]]) -> dict[str, Any]:
                body = json.dumps({"question": text, "history": history}).encode()
                req = urllib.request.Request(url + "api/v1/ask", body, {"content-type": "application/json"})
                with urllib.request.urlopen(req, timeout=120) as resp:
                    result: dict[str, Any] = json.loads(resp.read())
                    return result

            clients = [Client(url, verbose=False) for _ in range(args.sessions)]
            slot = iter(range(10**9))

            def gradio(text: str, history: list[dict[str, str]]) -> dict[str, Any]:
                client = clients[next(slot) % len(clients)]
                result: dict[str, Any] = client.predict(text, "clinician", history or None, None, api_name="/ask")
                return result

            results = {
                "sessions": args.sessions,
                "rest": {"single_ms": _single(rest), **_burst(rest, args.sessions)},
                "gradio_queue": {"single_ms": _single(gradio), **_burst(gradio, args.sessions)},
            }
        finally:
            _stop(proc)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{args.sessions} concurrent two-turn sessions ({2 * args.sessions} requests), one app process:\n")
    print("| route | one request alone, ms | requests/s | p50 ms | p95 ms | failures |")
    print("|---|---|---|---|---|---|")
    for name, label in (("rest", "REST POST /api/v1/ask"), ("gradio_queue", "Gradio /ask (gradio_client)")):
        r = results[name]
        print(
            f"| {label} | {r['single_ms']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['failures']} |"
        )
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
