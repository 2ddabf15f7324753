"""The background loading of the server's assistant (assistant/web/service.py), with a stand-in
loader and builder: quick start on a base-model index, the swap to the adapted one, failures.

The stand-ins record their calls and are gated with events, so the states in between (the
base index live while the adapted one builds) are observed without timing guesses.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings
from assistant.web import service as service_module
from assistant.web.service import AssistantService, NotReady, needs_build, quick_index_dir

WAIT = 10.0  # seconds; the stand-ins answer at once, this only bounds a hang


class StubIndex:
    def __init__(self, settings: Settings) -> None:
        self.path = settings.index_dir
        self.manifest = {
            "model": "stub-model",
            "dimension": 3,
            "counts": {"documents": 2, "passages": 3},
            "adaptation": {"applied": settings.adapt, "key": "k" if settings.adapt else None},
        }


class StubAssistant:
    """What the loader returns: the settings it was loaded with, and an index that says whether it is adapted."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index = StubIndex(settings)
        self.retriever = type("Retriever", (), {"settings": settings})()


class Loader:
    """Records the settings of each load; "builds" the folder (and a lock file beside it)."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[Settings] = []
        self.fail = fail

    def __call__(self, settings: Settings, log: Callable[[str], None]) -> StubAssistant:
        self.calls.append(settings)
        if self.fail:
            raise RuntimeError(self.fail)
        log(f"loading {settings.index_dir}")
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        (settings.index_dir / "manifest.json").write_text("{}")
        (settings.index_dir.parent / f".{settings.index_dir.name}.lock").touch()
        return StubAssistant(settings)


class Builder:
    """Stands in for ``python -m assistant build``: waits for ``release``, then returns ``code``."""

    def __init__(self, code: int = 0) -> None:
        self.code = code
        self.calls: list[Settings] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, settings: Settings) -> int:
        self.calls.append(settings)
        self.started.set()
        assert self.release.wait(WAIT), "the test never released the builder"
        return self.code


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """Adapted-model settings whose index folder does not exist yet (a first start)."""
    return Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", adapt=True)


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_quick_start_serves_the_base_index_then_swaps_in_the_adapted_one(settings: Settings) -> None:
    loader, builder = Loader(), Builder(code=0)
    service = AssistantService(settings, loader=loader, builder=builder, quick_start=True)
    with pytest.raises(NotReady) as early:
        service.get()
    assert early.value.status == "building" and service.health()["status"] == "building"

    service.start()
    assert builder.started.wait(WAIT)
    quick = quick_index_dir(settings.index_dir)
    assert quick == settings.index_dir.parent / ".index.base" and quick.is_dir()
    # while the adapted index builds: the base-model index answers
    held = service.get()
    assert isinstance(held, StubAssistant) and held.settings.index_dir == quick and held.settings.adapt is False
    health = service.health()
    assert health["status"] == "ready" and health["live"] == "base" and service.live == "base"
    assert health["model"]["adapted"] is False and health["index"]["path"] == str(quick)
    assert "base-model index" in health["stage"] and not service.swapped.is_set()
    assert [s.index_dir for s in loader.calls] == [quick]
    assert builder.calls == [settings]  # the adapted build gets the original settings

    builder.release.set()
    assert service.swapped.wait(WAIT)
    adapted = service.get()
    assert adapted is not held and adapted.settings == settings and adapted.index.manifest["adaptation"]["applied"]
    assert held.settings.index_dir == quick and held.index.manifest["adaptation"]["applied"] is False  # unchanged
    assert service.live == "adapted" and service.health()["live"] == "adapted"
    assert service.health()["model"]["adapted"] is True and service.health()["status"] == "ready"
    assert loader.calls == [settings.with_(index_dir=quick, adapt=False), settings]
    assert not quick.exists() and not (quick.parent / f".{quick.name}.lock").exists()
    assert settings.index_dir.is_dir()


def test_a_request_holding_the_base_assistant_keeps_it_across_the_swap(settings: Settings) -> None:
    builder = Builder(code=0)
    service = AssistantService(settings, loader=Loader(), builder=builder, quick_start=True).start()
    assert builder.started.wait(WAIT)
    in_flight = service.get()  # a request starts on the base index ...
    builder.release.set()
    assert service.swapped.wait(WAIT)
    # ... and finishes on it: the swap replaced the service's reference, not the object
    assert in_flight.index.manifest["adaptation"]["applied"] is False
    assert in_flight.settings.adapt is False and in_flight.index.path == quick_index_dir(settings.index_dir)
    assert service.get().index.manifest["adaptation"]["applied"] is True


def test_a_failed_adapted_build_keeps_the_base_index_live(settings: Settings) -> None:
    loader, builder = Loader(), Builder(code=1)
    builder.release.set()
    service = AssistantService(settings, loader=loader, builder=builder, quick_start=True).start()
    assert service.swapped.wait(WAIT)
    health = service.health()
    assert health["status"] == "ready" and health["live"] == "base"
    assert "failed to build" in health["stage"] and "exit 1" in health["stage"]
    assert service.get().settings.adapt is False
    assert len(loader.calls) == 1  # the adapted index was not loaded
    assert quick_index_dir(settings.index_dir).is_dir()  # still answering from it


@pytest.mark.parametrize("quick_start", [True, False])
def test_a_loader_that_raises_reports_the_failure(settings: Settings, quick_start: bool) -> None:
    builder = Builder()
    loader = Loader(fail="corpus/references.json line 3: broken")
    service = AssistantService(settings, loader=loader, builder=builder, quick_start=quick_start).start()
    assert service.swapped.wait(WAIT)
    health = service.health()
    assert health["status"] == "failed" and "references.json line 3: broken" in health["stage"]
    assert "live" not in health and "counts" not in health
    with pytest.raises(
        NotReady, match=re.escape("could not be loaded: corpus/references.json line 3: broken")
    ) as failed:
        service.get()
    assert failed.value.status == "failed"
    assert builder.calls == [] and len(loader.calls) == 1


def test_without_quick_start_the_loader_runs_once_with_the_settings_given(settings: Settings) -> None:
    loader, builder = Loader(), Builder()
    service = AssistantService(settings, loader=loader, builder=builder, quick_start=False)
    assert service.wait(WAIT).settings is settings
    assert loader.calls == [settings] and builder.calls == []
    assert service.live == "adapted" and service.health()["status"] == "ready"
    assert not quick_index_dir(settings.index_dir).exists()


def test_quick_start_is_skipped_when_the_build_would_not_adapt(settings: Settings) -> None:
    loader, builder = Loader(), Builder()
    base = settings.with_(adapt=False)
    service = AssistantService(base, loader=loader, builder=builder, quick_start=True)
    assert service.wait(WAIT).settings is base
    assert loader.calls == [base] and builder.calls == [] and service.live == "base"


def test_quick_start_is_skipped_when_the_index_is_up_to_date(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[Settings] = []
    monkeypatch.setattr(service_module, "needs_build", lambda s: checked.append(s) or False)
    loader, builder = Loader(), Builder()
    service = AssistantService(settings, loader=loader, builder=builder, quick_start=True)
    assert service.wait(WAIT).settings is settings
    assert checked == [settings] and loader.calls == [settings] and builder.calls == []


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("1", True), ("0", False), ("off", False), (" False ", False)]
)
def test_quick_start_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("LBP_QUICK_START", raising=False)
    else:
        monkeypatch.setenv("LBP_QUICK_START", value)
    assert AssistantService().quick_start is expected
    assert AssistantService(quick_start=True).quick_start is True  # an explicit choice wins


def test_quick_start_off_in_the_environment_loads_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LBP_QUICK_START", "0")
    loader, builder = Loader(), Builder()
    service = AssistantService(settings, loader=loader, builder=builder)
    assert service.wait(WAIT).settings is settings
    assert loader.calls == [settings] and builder.calls == [] and service.live == "adapted"


def test_start_loads_only_once(settings: Settings) -> None:
    gate = threading.Event()
    calls: list[Any] = []

    def loader(s: Settings, log: Callable[[str], None]) -> StubAssistant:
        calls.append(s)
        gate.wait(WAIT)
        return StubAssistant(s)

    service = AssistantService(settings, loader=loader, quick_start=False)
    service.start()
    service.start()
    assert service.health()["status"] == "building" and "seconds" in service.health()
    gate.set()
    service.wait(WAIT)
    service.start()
    assert len(calls) == 1 and "load_seconds" in service.health()


def test_needs_build_for_a_missing_folder_and_not_for_the_session_index(lbp_index_dir: Path, tmp_path: Path) -> None:
    assert needs_build(Settings.from_env(index_dir=tmp_path / "missing")) is True
    current = Settings.from_env(index_dir=lbp_index_dir)
    assert needs_build(current) is False
    assert needs_build(current.with_(chunk_tokens=current.chunk_tokens + 16)) is True  # stale settings
