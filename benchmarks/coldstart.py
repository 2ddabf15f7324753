"""Cold start: a new process to its first answer, against an index that is already built.

- CLI: ``python -m assistant ask|search "..." --index DIR --corpus DIR``; time to the first
  byte of the answer on stdout, and to exit.
- peer: a new process that imports txtai, loads its saved index and prints a search.
- app: ``python app.py`` with ``LBP_PORT`` set; time until the port answers HTTP, until
  ``/api/v1/health`` says the index is loaded, until a first ``POST /api/v1/ask`` returns,
  and until a first ``/ask`` through gradio_client returns (imported beforehand).
- imports: ``python -X importtime`` of the CLI query path: which heavy packages it loads.

Runs alternate ours and the peer so that a change in machine load hits both.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, REPO_ROOT, child_env, free_port, run_child

QUESTION = "Is exercise therapy effective for chronic low back pain?"
HEAVY = ("torch", "gradio", "sentence_transformers", "transformers", "txtai", "pandas", "sklearn", "onnx")


def _cli(command: str, index: Path, corpus: Path, text: str = QUESTION) -> list[str]:
    return [PYTHON, "-m", "assistant", command, text, "--index", str(index), "--corpus", str(corpus)]


def cli_and_peer(index: Path, corpus: Path, peer_index: Path | None, runs: int) -> dict[str, Any]:
    """Cold start of ``ask`` and ``search`` (ours) and of a txtai search (peer), ``runs`` each."""
    samples: dict[str, list[tuple[float, float, float]]] = {"cli_ask": [], "cli_search": [], "peer_search": []}
    for _ in range(runs):
        for name in samples:
            if name == "peer_search":
                if peer_index is None:
                    continue
                args = [PYTHON, "-m", "benchmarks.child", "cold-peer", "--index", str(peer_index), "--query", QUESTION]
            else:
                args = _cli(name.removeprefix("cli_"), index, corpus)
            run = run_child(args, env=child_env(), timeout=600).check()
            samples[name].append((run.first_output_s or run.wall_s, run.wall_s, run.peak_rss_mb))
    out: dict[str, Any] = {}
    for name, rows in samples.items():
        if rows:
            out[name] = {
                "first_answer": summarize_s([r[0] for r in rows]),
                "exit": summarize_s([r[1] for r in rows]),
                "peak_rss_mb": round(max(r[2] for r in rows), 1),
            }
    return out


def summarize_s(values: list[float]) -> dict[str, float]:
    """Median, min and max of a few wall times, in seconds."""
    s = sorted(values)
    mid = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    return {"n": len(s), "median_s": round(mid, 3), "min_s": round(s[0], 3), "max_s": round(s[-1], 3)}


def query_path_imports(index: Path, corpus: Path) -> dict[str, Any]:
    """Heavy packages the CLI ``ask`` imports, and its slowest imports (``-X importtime``)."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", *_cli("ask", index, corpus)[1:]],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        timeout=600,
    )
    top: list[tuple[int, str]] = []
    loaded: set[str] = set()
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if not cumulative.isdigit():
            continue
        loaded.add(name.split(".")[0])
        if line.split("|")[2].startswith(" ") and not line.split("|")[2].startswith("  "):
            top.append((int(cumulative), name))  # a top-level import
    top.sort(reverse=True)
    return {
        "heavy_imported": sorted(p for p in HEAVY if p in loaded),
        "heavy_not_imported": sorted(p for p in HEAVY if p not in loaded),
        "slowest_top_level_ms": {name: round(us / 1000, 1) for us, name in top[:8]},
    }


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs, without reaping it (its rusage is read when it is)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _wait_http(url: str, proc: subprocess.Popen[bytes], deadline: float) -> bool:
    while time.perf_counter() < deadline:
        if not _running(proc.pid):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> float | None:
    """SIGTERM the server we started (SIGKILL after ``grace`` s); its peak RSS in MB."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    deadline = time.perf_counter() + grace
    while True:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped
            return None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_maxrss / 1024)
        if time.perf_counter() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        time.sleep(0.05)


def app(index: Path, corpus: Path, runs: int, workdir: Path, timeout: float = 300.0) -> dict[str, Any]:
    """Cold start of the Gradio app to its port answering and to a first ``/ask``."""
    if not (REPO_ROOT / "app.py").is_file():
        return {"skipped": "app.py not found"}
    try:
        from gradio_client import Client
    except ImportError as exc:
        return {"skipped": f"gradio_client not importable: {exc}"}
    port_s: list[float] = []
    ready_s: list[float] = []
    rest_s: list[float] = []
    first_s: list[float] = []
    rss: list[float] = []
    for i in range(runs):
        port = free_port()
        env = child_env(
            LBP_PORT=str(port),
            LBP_HOST="127.0.0.1",
            LBP_INDEX=str(index),
            LBP_CORPUS=str(corpus),
            LBP_FEEDBACK_DB=str(workdir / f"feedback-{i}.sqlite3"),
        )
        log = workdir / f"app-{i}.log"
        start = time.perf_counter()
        with log.open("wb") as fh:
            proc = subprocess.Popen([PYTHON, "app.py"], cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            if not _wait_http(url, proc, start + timeout):
                tail = log.read_text(errors="replace")[-1500:]
                return {"skipped": f"app did not answer on port {port} within {timeout:.0f} s: {tail}"}
            port_s.append(time.perf_counter() - start)
            if not _wait_http(url + "api/v1/health", proc, start + timeout):
                return {"skipped": f"the index did not load within {timeout:.0f} s"}
            ready_s.append(time.perf_counter() - start)
            body = json.dumps({"question": QUESTION}).encode()
            request = urllib.request.Request(url + "api/v1/ask", body, {"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as resp:
                if "answer" not in json.loads(resp.read()):
                    return {"skipped": "/api/v1/ask returned no answer"}
            rest_s.append(time.perf_counter() - start)
            client = Client(url, verbose=False)
            result = client.predict(QUESTION, "clinician", None, None, api_name="/ask")
            first_s.append(time.perf_counter() - start)
            if not isinstance(result, dict) or "answer" not in result:
                return {"skipped": f"/ask returned {type(result).__name__}, not an answer"}
        except Exception as exc:  # an app under construction: report, do not fail the benchmark
            return {"skipped": f"app error: {type(exc).__name__}: {exc}"[:500]}
        finally:
            peak = _stop(proc)
            if peak is not None:
                rss.append(peak)
    return {
        "port_open": summarize_s(port_s),
        "index_loaded": summarize_s(ready_s),
        "first_rest_answer": summarize_s(rest_s),
        "first_answer": summarize_s(first_s),
        "peak_rss_mb": round(max(rss), 1) if rss else None,
    }
