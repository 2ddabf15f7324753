"""The NCBI E-utilities ``efetch`` client for PubMed: polite, with retries.

Politeness and robustness, as NCBI asks (https://www.ncbi.nlm.nih.gov/books/NBK25497/):

- at most 3 requests a second without an API key, 10 with one (:class:`RateLimiter`);
- ``tool`` and ``email`` sent with every request; up to 200 PMIDs per request;
- retries with exponential backoff on HTTP 429, 5xx, timeouts and dropped connections,
  honouring ``Retry-After`` (:func:`retry_delay`).

The client is plain :mod:`urllib` rather than :mod:`Bio.Entrez` because the base URL must
be configurable (``NCBI_EUTILS_URL``, for mirrors and for tests against a local server)
and retries must back off on 5xx. Each response is cut into its articles, unchanged, by
:func:`split_pubmed_xml`. Environment: ``NCBI_EMAIL``, ``NCBI_API_KEY``,
``NCBI_EUTILS_URL``. The cache, the batches and the ``fetch-pubmed`` command are in
:mod:`assistant.sources.pubmed`.
"""

from __future__ import annotations

import http.client
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen
from xml.parsers import expat

__all__ = [
    "DEFAULT_EUTILS_URL",
    "EutilsClient",
    "EutilsError",
    "EutilsSettings",
    "RateLimiter",
    "retry_delay",
    "split_pubmed_xml",
]

DEFAULT_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
TOOL = "lbp-assistant"
MAX_IDS_PER_REQUEST = 200
ARTICLE_TAGS = ("PubmedArticle", "PubmedBookArticle")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class EutilsError(RuntimeError):
    """E-utilities failed for good (bad request, or retries exhausted)."""


@dataclass(frozen=True)
class EutilsSettings:
    """How to talk to E-utilities.

    Attributes:
        base_url: E-utilities root (``efetch.fcgi`` is appended).
        email, api_key: sent with each request; the key raises the limit to 10 requests/s.
        tool: the ``tool`` parameter NCBI asks for.
        timeout: seconds to wait for a response.
        max_retries: retries after the first attempt, for 429, 5xx and network errors.
        backoff: the first retry's wait in seconds; doubled for each further retry.
        max_backoff: the longest wait between retries.
        batch_size: PMIDs per efetch request (at most 200).
    """

    base_url: str = DEFAULT_EUTILS_URL
    email: str | None = None
    api_key: str | None = None
    tool: str = TOOL
    timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    batch_size: int = 100

    @classmethod
    def from_env(cls, **overrides: Any) -> EutilsSettings:
        """Defaults, then ``NCBI_EUTILS_URL``/``NCBI_EMAIL``/``NCBI_API_KEY``, then overrides."""
        env = {
            "base_url": os.environ.get("NCBI_EUTILS_URL") or None,
            "email": os.environ.get("NCBI_EMAIL") or None,
            "api_key": os.environ.get("NCBI_API_KEY") or None,
        }
        values: dict[str, Any] = {k: v for k, v in env.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if not 1 <= settings.batch_size <= MAX_IDS_PER_REQUEST:
            raise ValueError(f"batch size must be 1-{MAX_IDS_PER_REQUEST}, got {settings.batch_size}")
        return settings

    @property
    def requests_per_second(self) -> int:
        """NCBI's limit: 10 requests a second with an API key, 3 without."""
        return 10 if self.api_key else 3


def retry_delay(attempt: int, backoff: float, max_backoff: float, retry_after: str | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``backoff * 2**attempt``, capped.

    A server's ``Retry-After`` (in seconds) wins when it asks for longer.
    """
    delay = min(max_backoff, backoff * 2**attempt)
    try:
        return max(delay, min(max_backoff, float(retry_after))) if retry_after else delay
    except ValueError:  # an HTTP date; the exponential wait is good enough
        return delay


class RateLimiter:
    """Spaces calls to :meth:`wait` at least ``1 / per_second`` seconds apart."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # 5% slack so that network and scheduling jitter never put us over NCBI's limit at their end.
        self.interval = 1.05 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")

    def wait(self) -> None:
        """Block until the next request may go out."""
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            # count from when we actually woke: a late wake-up must not shorten the next gap
            now = max(self._clock(), self._next)
        self._next = now + self.interval


def split_pubmed_xml(data: bytes) -> dict[str, bytes]:
    """PMID -> the exact bytes of its ``<PubmedArticle>`` (or ``<PubmedBookArticle>``).

    Uses expat's byte offsets, so each article is cut out unchanged (namespaces,
    MathML and entities stay as NCBI sent them).

    Raises:
        EutilsError: if ``data`` is not a ``<PubmedArticleSet>`` (e.g. an error page).
    """
    parser = expat.ParserCreate()
    depth = 0
    root: list[str] = []
    spans: list[tuple[int, int, str]] = []
    state: dict[str, Any] = {"start": None, "pmid": None, "in_pmid": False, "text": []}

    def start(name: str, _attrs: Any) -> None:
        nonlocal depth
        depth += 1
        if depth == 1:
            root.append(name)
        elif depth == 2 and name in ARTICLE_TAGS:
            state.update(start=parser.CurrentByteIndex, pmid=None)
        elif name == "PMID" and depth == 4 and state["pmid"] is None:
            state.update(in_pmid=True, text=[])

    def end(name: str) -> None:
        nonlocal depth
        if name == "PMID" and state["in_pmid"]:
            state.update(in_pmid=False, pmid="".join(state["text"]).strip())
        elif depth == 2 and name in ARTICLE_TAGS and state["start"] is not None:
            stop = data.index(b">", parser.CurrentByteIndex) + 1
            spans.append((state["start"], stop, state["pmid"] or ""))
            state["start"] = None
        depth -= 1

    def chars(text: str) -> None:
        if state["in_pmid"]:
            state["text"].append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise EutilsError(f"E-utilities sent malformed XML ({exc}): {data[:200]!r}") from exc
    if root != ["PubmedArticleSet"]:
        raise EutilsError(f"E-utilities did not send a PubmedArticleSet: {data[:300]!r}")
    return {pmid: data[a:b] for a, b, pmid in spans if pmid}


class EutilsClient:
    """``efetch`` for PubMed with rate limiting and retries.

    Args:
        settings: URL, identity, limits.
        limiter: shared rate limiter (default: one for ``settings``).
        sleep: how to wait between retries (tests pass a recorder).
        log: where retry messages go.
    """

    def __init__(
        self,
        settings: EutilsSettings,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter or RateLimiter(settings.requests_per_second)
        self._sleep = sleep
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.requests = 0

    def efetch_url(self, pmids: Sequence[str]) -> str:
        """The efetch URL for ``pmids`` (PubMed XML)."""
        params = {"db": "pubmed", "id": ",".join(pmids), "retmode": "xml", "tool": self.settings.tool}
        if self.settings.email:
            params["email"] = self.settings.email
        if self.settings.api_key:
            params["api_key"] = self.settings.api_key
        return f"{self.settings.base_url.rstrip('/')}/efetch.fcgi?{urlencode(params)}"

    def efetch(self, pmids: Sequence[str]) -> dict[str, bytes]:
        """PMID -> PubmedArticle XML for ``pmids``; PMIDs PubMed does not know are absent."""
        if not 1 <= len(pmids) <= MAX_IDS_PER_REQUEST:
            raise ValueError(f"efetch takes 1-{MAX_IDS_PER_REQUEST} PMIDs per request, got {len(pmids)}")
        return split_pubmed_xml(self._get(self.efetch_url(pmids)))

    def _get(self, url: str) -> bytes:
        shown = url.split("?")[0]
        for attempt in range(self.settings.max_retries + 1):
            self.limiter.wait()
            self.requests += 1
            retry_after = None
            try:
                request = Request(url, headers={"User-Agent": f"{self.settings.tool} (python urllib)"})
                with urlopen(request, timeout=self.settings.timeout) as response:
                    return bytes(response.read())
            except HTTPError as exc:
                if exc.code not in RETRYABLE_STATUS:
                    raise EutilsError(f"{shown}: HTTP {exc.code} {exc.reason}") from exc
                problem = f"HTTP {exc.code}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            except (URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt == self.settings.max_retries:
                raise EutilsError(f"{shown}: giving up after {attempt + 1} attempts ({problem})")
            delay = retry_delay(attempt, self.settings.backoff, self.settings.max_backoff, retry_after)
            self._log(f"{shown}: {problem}; retry {attempt + 1}/{self.settings.max_retries} in {delay:.1f}s")
            self._sleep(delay)
        raise AssertionError("unreachable")
