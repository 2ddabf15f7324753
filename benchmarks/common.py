"""Measurement helpers shared by the benchmark parts.

Latency summaries, child processes (wall time, time to first output, peak resident memory
from ``wait4``), folder sizes, free ports and a description of the machine. Every figure
that matters is measured in a child process so that imports, thread pools and memory of
one system never leak into the other's numbers.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RESULT_PREFIX = "BENCH_RESULT "


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean of durations in seconds, reported in milliseconds."""
    if not len(seconds):
        return {"n": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "n": len(ms),
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def emit(result: Mapping[str, Any]) -> None:
    """Print a child's result as the one line the parent parses."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def rss_mb() -> float:
    """Current resident memory of this process in MB (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class ChildRun:
    """What a finished child process did."""

    args: tuple[str, ...]
    returncode: int
    wall_s: float
    first_output_s: float | None
    peak_rss_mb: float
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The JSON the child printed with :func:`emit` (the last one)."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                data: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                return data
        raise RuntimeError(f"{' '.join(self.args)} printed no result; stderr:\n{self.stderr[-3000:]}")

    def check(self) -> ChildRun:
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.args)} exited {self.returncode}; stderr:\n{self.stderr[-3000:]}")
        return self


def child_env(**extra: str) -> dict[str, str]:
    """The environment of benchmark children: offline, no analytics, the repo importable."""
    # LBP_* settings of the caller (another index, an LLM endpoint) would change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBP_")}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
        }
    )
    env.update(extra)
    return env


def run_child(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 1800.0, cwd: Path = REPO_ROOT
) -> ChildRun:
    """Run ``args`` to completion; time it, note when it first wrote to stdout, and read its
    own peak RSS from ``wait4`` (exact for that process, unlike ``RUSAGE_CHILDREN``).

    Raises:
        TimeoutError: the child ran longer than ``timeout`` seconds (it is killed).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env or child_env()), cwd=cwd
    )
    first: list[float] = []
    out: list[bytes] = []
    err: list[bytes] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            if not first:
                first.append(time.perf_counter() - start)
            out.append(chunk)

    def read_stderr() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(65536):
            err.append(chunk)

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for t in readers:
        t.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join(timeout=10)
    if wall >= timeout:
        raise TimeoutError(f"{' '.join(args)} took more than {timeout:.0f} s")
    return ChildRun(
        tuple(args),
        proc.returncode,
        wall,
        first[0] if first else None,
        usage.ru_maxrss / 1024,
        b"".join(out).decode("utf-8", "replace"),
        b"".join(err).decode("utf-8", "replace"),
    )


def run_script(script: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 1800.0) -> ChildRun:
    """Run ``python -m benchmarks.<script> args...`` from the repository root."""
    return run_child([PYTHON, "-m", f"benchmarks.{script}", *args], env=env, timeout=timeout)


def folder_mb(path: Path) -> float:
    """Bytes of all files under ``path``, in MB."""
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20, 3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU, cores, memory and load: the context every figure was measured in."""
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("lbp-assistant", "numpy", "faiss-cpu", "torch", "sentence-transformers", "bm25s", "txtai"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
