"""The JSON contracts of the REST API (:mod:`.rest`): the request bodies, bounded by
:mod:`assistant.limits` (unknown fields refused, strings stripped), and the documented
responses, which may carry more fields than they name. FastAPI validates requests against
them and publishes them in the schema at ``/docs``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.limits import (
    MAX_COMMENT_CHARS,
    MAX_FILTER_CHARS,
    MAX_FILTER_KEYS,
    MAX_FILTER_VALUES,
    MAX_HISTORY_CHARS,
    MAX_HISTORY_MESSAGES,
    MAX_MESSAGE_CHARS,
    MAX_QUESTION_CHARS,
    MAX_SEARCH_K,
)

FilterKey = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
FilterValue = Annotated[str, Field(min_length=1, max_length=MAX_FILTER_CHARS)]
FilterValues = Annotated[list[FilterValue], Field(min_length=1, max_length=MAX_FILTER_VALUES)]
Filters = Annotated[
    dict[FilterKey, FilterValues],
    Field(
        max_length=MAX_FILTER_KEYS,
        description='Passage metadata filters, e.g. {"species": ["human"], "design_group": ["review"], '
        '"lbp_phase": ["chronic"]}. Values of one key are alternatives; keys must all match.',
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Message(_Body):
    role: Literal["user", "assistant", "system"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class AskRequest(_Body):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question")
    mode: Literal["clinician", "patient"] = Field("clinician", description="patient: plain language")
    history: list[Message] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_MESSAGES,
        description=f"earlier messages of the conversation, oldest first, for follow-ups "
        f"(at most {MAX_HISTORY_CHARS:,} characters in all)",
    )
    filters: Filters | None = None

    @field_validator("history")
    @classmethod
    def _history_size(cls, history: list[Message]) -> list[Message]:
        total = sum(len(m.content) for m in history)
        if total > MAX_HISTORY_CHARS:
            raise ValueError(f"{total:,} characters in all; at most {MAX_HISTORY_CHARS:,} are accepted")
        return history


class SearchRequest(_Body):
    text: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the query")
    k: int = Field(10, ge=1, le=MAX_SEARCH_K, description="how many passages")
    retriever: Literal["hybrid", "dense", "bm25"] = "hybrid"
    filters: Filters | None = None


class FeedbackRequest(_Body):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question that was answered")
    answer: str = Field(min_length=1, max_length=MAX_HISTORY_CHARS, description="the answer that is rated")
    rating: Literal[1, -1] = Field(description="1: helpful, -1: not helpful")
    comment: str = Field("", max_length=MAX_COMMENT_CHARS)
    mode: Literal["clinician", "patient"] = "clinician"
    citations: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list, max_length=100, description="the [n] numbers the answer cited"
    )
    session_id: str = Field("api", min_length=1, max_length=100, description="your id of the conversation")
    turn: int = Field(1, ge=1, le=10_000, description="the answer's number in that conversation")
    request_id: UUID | None = Field(
        None,
        description="a UUID you choose for this rating: sending it again (a retry) stores nothing more and "
        "answers with the first row's id. Without it, every request is a new rating.",
    )


class FeedbackOut(BaseModel):
    id: int = Field(description="the stored row's id")
    request_id: str = Field(description="the rating's key: the one sent, or one made for it")


class _Open(BaseModel):
    """Documented fields; more may be present."""

    model_config = ConfigDict(extra="allow")


class Citation(_Open):
    n: int = Field(description="the number used as [n] in the answer")
    doc_id: str
    passage_id: str
    title: str
    authors: list[str]
    journal: str | None = None
    year: int | None = None
    pmid: str | None = None
    doi: str | None = None
    url: str | None = None
    study_type: str | None = None
    species: str | None = None
    passage: str = Field(description="the cited passage")
    quotes: list[str] = Field(description="the sentences of the passage quoted in the answer")


class EvidenceRow(_Open):
    n: int
    doc_id: str
    study: str = Field(description="first author and year")
    design: str
    species: str
    size: str
    population: str
    phase: str
    comparison: str
    result: str = Field(description="the quoted main result")
    direction: str = Field(description="benefit, no difference, uncertain, harm or other")
    related: bool = Field(description="shown as related evidence (the question named something no study covers)")


class AnswerOut(_Open):
    answer: str = Field(description="the answer; each [n] is a citation")
    citations: list[Citation]
    evidence: list[EvidenceRow] = Field(description="one row per cited study")
    abstained: bool
    red_flag: bool
    mode: str
    query: str = Field(description="the standalone question answered (follow-ups rewritten)")
    notices: list[str]


class HitOut(_Open):
    rank: int
    doc_id: str
    passage_id: str
    score: float
    retriever: str
    components: dict[str, Any]
    text: str
    metadata: dict[str, Any]


class ErrorOut(BaseModel):
    error: str = Field(
        description="bad_request, unauthorized, not_found, building, failed, feedback_unavailable or internal"
    )
    detail: Any
