"""Shared fixtures: one real index of the embedded corpus, built once per test session.

The index is built with the real packaged model and real FAISS into a temporary folder;
``LBP_INDEX`` points at it so that subprocesses (the CLI, the Gradio app) use the same
index instead of building their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def lbp_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Folder of a freshly built index of ``corpus/`` (shared by the whole session)."""
    from assistant.config import Settings
    from assistant.search.build import ensure_index

    reuse = os.environ.get("LBP_TEST_INDEX")
    path = Path(reuse) if reuse else tmp_path_factory.mktemp("lbp") / "index"
    settings = Settings.from_env(index_dir=path, corpus_dir=REPO / "corpus")
    ensure_index(settings)
    previous = os.environ.get("LBP_INDEX")
    os.environ["LBP_INDEX"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("LBP_INDEX", None)
    else:
        os.environ["LBP_INDEX"] = previous


@pytest.fixture(scope="session")
def lbp_settings(lbp_index_dir: Path):  # type: ignore[no-untyped-def]
    from assistant.config import Settings

    return Settings.from_env(index_dir=lbp_index_dir, corpus_dir=REPO / "corpus")


@pytest.fixture(scope="session")
def bot(lbp_settings):  # type: ignore[no-untyped-def]
    """An :class:`assistant.Assistant` over the session index."""
    from assistant import Assistant

    return Assistant.load(settings=lbp_settings)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository (benchmarks and the source corpus)."""
    return SHARED


# ---- app fixtures (Gradio app tests) below this line ----
