"""The assistant of a server process, loaded in the background so the server answers at once.

The web app and the REST API share one :class:`AssistantService`. :meth:`~AssistantService.start`
loads the index in a thread; until it is ready, :meth:`~AssistantService.get` raises
:class:`NotReady`, which the REST API turns into ``503`` and the chat into a "still building"
message, and :meth:`~AssistantService.health` says what is going on::

    {"status": "building", "stage": "No index at index yet: building it (first run).", "seconds": 12.3}
    {"status": "ready", "live": "base", "stage": "building the adapted index ...", "index": {...}, ...}
    {"status": "ready", "live": "adapted", "index": {...}, "model": {...}, "counts": {...}}

**Quick start.** When the index is missing or stale and the build would adapt the model to the
corpus (about 1.5 to 3.5 minutes of training on 2 cores), the service first builds a
base-model index beside it (``.<index>.base/``, about 20 s), answers from that one, and builds
the adapted index in a child process (``python -m assistant build``, which writes it
atomically under the build lock). When the child succeeds, the adapted index is loaded and
swapped in with one reference assignment: a request in flight finishes on the index it
started with, and every later request uses the new one, so no answer mixes the two. If the
child fails, the base-model index stays live and ``health`` says why. ``LBP_QUICK_START=0``
(or ``quick_start=False``) builds the adapted index before answering, as the CLI does.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.bot import Assistant
    from assistant.config import Settings


class NotReady(RuntimeError):
    """The index is still being built (or failed to build); ``status`` is ``building`` or ``failed``."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


BUILDING_MESSAGE = (
    "The evidence index is still being built (the first start takes about a minute). Try again in a few seconds."
)


class AssistantService:
    """One :class:`~assistant.Assistant`, loaded once, shared by the threads of a server.

    Args:
        settings: what to load (default: :meth:`Settings.from_env`, read when loading starts).
        loader: loads (building if needed) the assistant of some settings, logging to a
            function; tests replace it.
        builder: builds the adapted index of some settings and returns an exit code (default:
            ``python -m assistant build`` in a child process).
        quick_start: serve a base-model index while the adapted one builds (default:
            ``$LBP_QUICK_START``, on unless ``0``).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        loader: Callable[[Settings, Callable[[str], None]], Assistant] | None = None,
        builder: Callable[[Settings], int] | None = None,
        quick_start: bool | None = None,
    ) -> None:
        self._settings = settings
        self._loader = loader or _load
        self._builder = builder or _build_in_child
        if quick_start is None:
            quick_start = os.environ.get("LBP_QUICK_START", "1").strip().lower() not in ("0", "false", "no", "off")
        self.quick_start = quick_start
        self.live: str | None = None
        self.swapped = threading.Event()
        self._assistant: Assistant | None = None
        self._error: BaseException | None = None
        self._stage = "not started"
        self._started: float | None = None
        self._ready_seconds: float | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()

    # ------------------------------------------------------------------ loading

    def start(self) -> AssistantService:
        """Start loading in a background thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None:
                self._started = time.perf_counter()
                self._stage = "loading the index"
                self._thread = threading.Thread(target=self._load, name="lbp-index-loader", daemon=True)
                self._thread.start()
        return self

    def _log(self, message: str) -> None:
        self._stage = message
        print(message, file=sys.stderr, flush=True)

    def _load(self) -> None:
        from assistant.config import Settings

        try:
            settings = self._settings or Settings.from_env()
            if self.quick_start and settings.adapt and needs_build(settings):
                self._quick_then_adapted(settings)
            else:
                self._publish(self._loader(settings, self._log), settings)
        except BaseException as exc:  # reported by health() and get(); the server stays up
            self._error = exc
            self._stage = f"failed: {exc}"
            print(f"error: the index could not be loaded: {exc}", file=sys.stderr, flush=True)
        finally:
            self._ready_seconds = time.perf_counter() - (self._started or time.perf_counter())
            self._ready.set()
            self.swapped.set()

    def _publish(self, assistant: Assistant, settings: Settings) -> None:
        """Make ``assistant`` the live one (one reference assignment: requests in flight keep theirs)."""
        adapted = bool((assistant.index.manifest.get("adaptation") or {}).get("applied"))
        self._assistant = assistant
        self.live = "adapted" if adapted else "base"
        self._stage = "ready"
        if not self._ready.is_set():
            self._ready_seconds = time.perf_counter() - (self._started or time.perf_counter())
            self._ready.set()

    def _quick_then_adapted(self, settings: Settings) -> None:
        quick = settings.with_(index_dir=quick_index_dir(settings.index_dir), adapt=False)
        self._log(f"Quick start: a base-model index at {quick.index_dir} first, the adapted one after it.")
        self._publish(self._loader(quick, self._log), quick)
        self._stage = "answering from the base-model index; building the index adapted to the corpus"
        self._log("Answering from the base-model index while the adapted index builds in the background.")
        code = self._builder(settings)
        if code != 0:
            self._stage = f"the adapted index failed to build (exit {code}); answering from the base-model index"
            self._log(f"warning: {self._stage}")
            return
        self._publish(self._loader(settings, self._log), settings)
        self._log("The adapted index is live.")
        shutil.rmtree(quick.index_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the build lock file of the quick index
            (quick.index_dir.parent / f".{quick.index_dir.name}.lock").unlink()

    def wait(self, timeout: float | None = None) -> Assistant:
        """The assistant, waiting up to ``timeout`` seconds for it (starting the load if needed)."""
        self.start()
        self._ready.wait(timeout)
        return self.get()

    def get(self) -> Assistant:
        """The assistant if it is ready, else :class:`NotReady`."""
        if self._assistant is not None:
            return self._assistant
        if self._error is not None:
            raise NotReady("failed", f"The evidence index could not be loaded: {self._error}")
        raise NotReady("building", BUILDING_MESSAGE)

    @property
    def ready(self) -> bool:
        return self._assistant is not None

    # ------------------------------------------------------------------ status

    def health(self) -> dict[str, Any]:
        """Status, and once ready the index, the model and the counts (``GET /api/v1/health``)."""
        from assistant import __version__

        status = "ready" if self._assistant is not None else "failed" if self._error is not None else "building"
        out: dict[str, Any] = {"status": status, "version": __version__, "stage": self._stage}
        if self.live:
            out["live"] = self.live
        if self._started is not None:
            since = self._ready_seconds if self._ready.is_set() else time.perf_counter() - self._started
            out["load_seconds" if self._ready.is_set() else "seconds"] = round(since or 0.0, 1)
        if self._assistant is not None:
            out.update(index_summary(self._assistant))
        return out


def index_summary(assistant: Assistant) -> dict[str, Any]:
    """The index folder, the model that encodes queries and the counts of an assistant."""
    index = assistant.index
    m = index.manifest
    adaptation = m.get("adaptation") or {}
    settings = assistant.retriever.settings
    return {
        "index": {
            "path": str(index.path),
            "created_at": m.get("created_at"),
            "corpus_hash": m.get("corpus_hash"),
            "faiss": (m.get("faiss") or {}).get("type"),
            "additions": len(m.get("additions") or []),
        },
        "model": {
            "name": m.get("model"),
            "dimension": m.get("dimension"),
            "adapted": bool(adaptation.get("applied")),
            "adaptation_key": adaptation.get("key"),
            "query_encoder": settings.query_encoder,
        },
        "counts": dict(m.get("counts") or {}),
    }


def quick_index_dir(index_dir: Path) -> Path:
    """Where the quick-start base-model index of ``index_dir`` lives: a hidden sibling."""
    index_dir = Path(index_dir)
    return index_dir.parent / f".{index_dir.name}.base"


def needs_build(settings: Settings) -> bool:
    """True when ``settings.index_dir`` is missing, unreadable or stale (a build is due)."""
    from assistant.documents.corpus import documents_hash, load_corpus
    from assistant.errors import IndexProblem
    from assistant.search.build import staleness
    from assistant.search.index import Index

    try:
        index = Index.load(settings.index_dir)
    except IndexProblem:
        return True
    return staleness(index.manifest, settings, documents_hash(load_corpus(settings.corpus_dir))) is not None


_children: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _stop_children() -> None:
    """Interrupt a build still running when the server stops (it cleans up its temporary folder)."""
    for child in list(_children):
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def _build_in_child(settings: Settings) -> int:
    """``python -m assistant build`` for ``settings`` (its progress goes to this console)."""
    command = [sys.executable, "-m", "assistant", "build", "--index", str(settings.index_dir)]
    command += ["--corpus", str(settings.corpus_dir)]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(command, env=env)
    _children.add(child)
    try:
        return child.wait()
    finally:
        _children.discard(child)


def _load(settings: Settings, log: Callable[[str], None]) -> Assistant:
    from assistant.bot import Assistant
    from assistant.search.build import ensure_index

    assistant = Assistant(ensure_index(settings, log=log), settings)
    # read (or on a first run, encode) the bank of precedents before the assistant serves, so
    # that no user waits for it: the first answer, or the first from a swapped-in index
    assistant.answerer.precedents  # noqa: B018 - loaded for its side effect
    return assistant
