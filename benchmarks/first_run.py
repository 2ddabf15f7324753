"""First run on a fresh machine: from no index and empty model caches to the first answer.

    .venv/bin/python benchmarks/first_run.py                 # ~5 min here (2 cores)
    .venv/bin/python benchmarks/first_run.py --skip-cli      # the app only (~2.5 min)

Each run gets an empty index folder, adaptation cache and ONNX cache in a temporary folder
(the pip packages and the packaged model are what a fresh machine has after ``make setup``):

- **app** (``python app.py``, quick start on, the default): seconds until the page is served,
  until ``/api/v1/health`` says ready (the base-model index is live: the first answer can
  be given), until a first ``POST /api/v1/ask`` returns, and until the adapted index is live
  (swapped in after its build in a child process);
- **app, quick start off** (``LBP_QUICK_START=0``, ``--no-quick`` to include it): the same,
  when the adapted index is built before answering (what the app did before quick start);
- **cli**: ``python -m assistant build`` alone: the adapted index as the command line builds
  it, with the adaptation's training time from the manifest.

Prints a table and writes JSON (``--output``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.coldstart import _stop
from benchmarks.common import PYTHON, REPO_ROOT, child_env, free_port

QUESTION = "Is exercise therapy effective for chronic low back pain?"


def _fresh_env(tmp: Path, **extra: str) -> dict[str, str]:
    return child_env(
        LBP_INDEX=str(tmp / "index"),
        LBP_CORPUS=str(REPO_ROOT / "corpus"),
        LBP_ADAPT_CACHE=str(tmp / "adapt-cache"),
        LBP_ONNX_CACHE=str(tmp / "onnx-cache"),
        LBP_FEEDBACK_DB=str(tmp / "feedback.sqlite3"),
        **extra,
    )


def _get(url: str) -> tuple[int, dict[str, Any] | None]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body[:1] == b"{" else None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def _post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def app_first_run(quick: bool, timeout: float = 900.0) -> dict[str, Any]:
    """Start the app on an empty machine state; time its milestones."""
    with tempfile.TemporaryDirectory(prefix="lbp-first-run-") as name:
        tmp = Path(name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = _fresh_env(tmp, LBP_PORT=str(port), LBP_HOST="127.0.0.1", LBP_QUICK_START="1" if quick else "0")
        log = tmp / "app.log"
        marks: dict[str, float] = {}
        start = time.perf_counter()
        with log.open("wb") as fh:
            proc = subprocess.Popen([PYTHON, "app.py"], cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            while time.perf_counter() - start < timeout:
                if proc.poll() is not None:
                    return {"error": f"app exited {proc.returncode}: {log.read_text(errors='replace')[-800:]}"}
                now = time.perf_counter() - start
                if "page" not in marks and _get(url + "/")[0] == 200:
                    marks["page"] = now
                status, health = _get(url + "/api/v1/health")
                if status == 200 and health and "ready" not in marks:
                    marks["ready"] = now
                    t = time.perf_counter()
                    answer = _post(url + "/api/v1/ask", {"question": QUESTION})
                    marks["first_answer"] = time.perf_counter() - start
                    marks["first_answer_request"] = time.perf_counter() - t
                    marks["first_answer_studies"] = len(answer.get("evidence") or [])
                    marks["first_live"] = health.get("live") == "adapted"
                if status == 200 and health and health.get("live") == "adapted":
                    marks["adapted_live"] = time.perf_counter() - start
                    break
                time.sleep(0.25)
            else:
                return {"error": f"not adapted within {timeout:.0f} s", **marks}
        finally:
            _stop(proc)
        text = log.read_text(errors="replace")
        marks["console_debug_lines"] = sum("DEBUG" in line for line in text.splitlines())
        marks["console_deprecation_warnings"] = text.lower().count("deprecat")
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in marks.items()}


def cli_build() -> dict[str, Any]:
    """``python -m assistant build`` from nothing; its wall time and the adaptation's training time."""
    with tempfile.TemporaryDirectory(prefix="lbp-first-build-") as name:
        tmp = Path(name)
        start = time.perf_counter()
        proc = subprocess.run(
            [PYTHON, "-m", "assistant", "build"], cwd=REPO_ROOT, env=_fresh_env(tmp), capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return {"error": proc.stderr[-800:]}
        manifest = json.loads((tmp / "index" / "manifest.json").read_text())
        adaptation = manifest.get("adaptation") or {}
        shutil.rmtree(tmp, ignore_errors=True)
        return {
            "build_s": round(wall, 1),
            "train_s": adaptation.get("train_seconds"),
            "precision": adaptation.get("precision"),
            "pairs": adaptation.get("pairs"),
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--skip-cli", action="store_true", help="do not time the CLI build")
    parser.add_argument("--no-quick", action="store_true", help="also time the app with LBP_QUICK_START=0")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "artifacts" / "speed" / "first_run.json")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"app_quick_start": app_first_run(quick=True)}
    if args.no_quick:
        results["app_without_quick_start"] = app_first_run(quick=False)
    if not args.skip_cli:
        results["cli_build"] = cli_build()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print("| run | page served s | first answer possible s | first answer s | adapted index live s |")
    print("|---|---|---|---|---|")
    for name in ("app_quick_start", "app_without_quick_start"):
        r = results.get(name)
        if r:
            cells = [r.get(k, r.get("error", "-")) for k in ("page", "ready", "first_answer", "adapted_live")]
            print(f"| {name} | " + " | ".join(str(c) for c in cells) + " |")
    if "cli_build" in results:
        c = results["cli_build"]
        print(f"\nCLI build from nothing: {c.get('build_s')} s (training {c.get('train_s')} s, {c.get('precision')})")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
