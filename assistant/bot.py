"""The :class:`Assistant`: one object that holds the index and answers searches and questions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from assistant.search.build import ensure_index
from assistant.search.index import Index
from assistant.search.retrieval import Filters, Retriever
from assistant.types import Hit

if TYPE_CHECKING:
    from assistant.answers.answer import Answer


class Assistant:
    """Search and ask over the embedded LBP corpus (or any indexed corpus).

    Example:
        >>> bot = Assistant.load()
        >>> bot.search("bed rest or staying active for acute back pain", k=3)[0].doc_id
        'ref-22'
    """

    def __init__(self, index: Index, settings: Settings) -> None:
        self.index = index
        self.settings = settings
        self.retriever = Retriever(index, settings)
        self._answerer: Any = None

    @classmethod
    def load(
        cls,
        index_dir: str | Path | None = None,
        corpus_dir: str | Path | None = None,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> Assistant:
        """Load the index, building or rebuilding it first when missing, stale or corrupt.

        Args:
            index_dir: index folder (default ``index/`` or ``$LBP_INDEX``).
            corpus_dir: corpus folder (default ``corpus/`` or ``$LBP_CORPUS``).
            settings: full settings; ``index_dir``/``corpus_dir``/``overrides`` win over it.
            **overrides: any :class:`~assistant.config.Settings` field.
        """
        base = settings or Settings.from_env()
        changes = {
            k: v for k, v in {"index_dir": index_dir, "corpus_dir": corpus_dir, **overrides}.items() if v is not None
        }
        settings = base.with_(**{k: Path(v) if k.endswith("_dir") else v for k, v in changes.items()})
        return cls(ensure_index(settings), settings)

    def search(
        self,
        text: str,
        k: int = 10,
        retriever: str = "hybrid",
        filters: Filters | None = None,
        mmr_lambda: float | None = None,
    ) -> list[Hit]:
        """Passage hits (``doc_id``, ``passage_id``, ``score``, ``text``, ``metadata``)."""
        return self.retriever.search(text, k=k, method=retriever, filters=filters, mmr_lambda=mmr_lambda)

    def search_documents(
        self, text: str, k: int = 10, retriever: str = "hybrid", filters: Filters | None = None
    ) -> list[tuple[str, float]]:
        """Document ids with their best passage score."""
        return self.retriever.search_documents(text, k=k, method=retriever, filters=filters)

    def ask(
        self,
        question: str,
        history: Sequence[Mapping[str, Any]] | None = None,
        mode: str = "clinician",
        filters: Filters | None = None,
    ) -> Answer:
        """A grounded, cited answer (see :mod:`assistant.answers.answer`).

        Args:
            question: the user's message.
            history: earlier messages, ``[{"role": "user"|"assistant", "content": str}]``.
            mode: ``clinician`` or ``patient``.
            filters: metadata filters as in :meth:`search`.
        """
        answer: Answer = self.answerer.ask(question, history=history, mode=mode, filters=filters)
        return answer

    @property
    def answerer(self) -> Any:
        """The :class:`~assistant.answers.answer.Answerer` (created on first use)."""
        if self._answerer is None:
            from assistant.answers.answer import Answerer

            self._answerer = Answerer(self.retriever, self.settings)
        return self._answerer
