"""Fetch PubMed abstracts through NCBI E-utilities, politely, with a cache.

``python -m assistant fetch-pubmed (--pmids ID... | --from-references)`` asks ``efetch``
for the PubMed XML of each PMID, keeps every article in an on-disk cache (one file per
PMID, written atomically), and writes the requested articles to one PubMed XML file that
``python -m assistant ingest`` reads.

Politeness and robustness, as NCBI asks (https://www.ncbi.nlm.nih.gov/books/NBK25497/):

- at most 3 requests a second without an API key, 10 with one (:class:`RateLimiter`);
- ``tool`` and ``email`` sent with every request; up to 200 PMIDs per request;
- retries with exponential backoff on HTTP 429, 5xx, timeouts and dropped connections,
  honouring ``Retry-After`` (:func:`retry_delay`);
- PMIDs already in the cache are never fetched again, so an interrupted run resumes
  where it stopped.

The client is plain :mod:`urllib` rather than :mod:`Bio.Entrez` because the base URL must
be configurable (``NCBI_EUTILS_URL``, for mirrors and for tests against a local server)
and retries must back off on 5xx; the XML is still read by :func:`Bio.Entrez.read` when
the output file is ingested. Environment: ``NCBI_EMAIL``, ``NCBI_API_KEY``,
``NCBI_EUTILS_URL``, ``LBP_CACHE`` (cache root; PubMed articles go to ``<root>/pubmed``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen
from xml.parsers import expat

from assistant.arguments import int_in, non_negative_int, positive_float
from assistant.config import Settings

__all__ = [
    "DEFAULT_EUTILS_URL",
    "EutilsClient",
    "EutilsError",
    "EutilsSettings",
    "FetchReport",
    "PubMedCache",
    "RateLimiter",
    "add_fetch_parser",
    "cmd_fetch_pubmed",
    "default_cache_dir",
    "fetch_pubmed",
    "pmids_from_references",
    "retry_delay",
    "split_pubmed_xml",
    "write_pubmed_xml",
]

DEFAULT_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
TOOL = "lbp-assistant"
MAX_IDS_PER_REQUEST = 200
ARTICLE_TAGS = ("PubmedArticle", "PubmedBookArticle")
PUBMED_DOCTYPE = (
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">'
)
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


def default_cache_dir() -> Path:
    """``$LBP_CACHE/pubmed``, else ``~/.cache/lbp-assistant/pubmed``."""
    root = os.environ.get("LBP_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "lbp-assistant") / "pubmed"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PubMedCache:
    """One file per PMID (``<folder>/<pmid>.xml``, a ``<PubmedArticle>`` element)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, pmid: str) -> Path:
        return self.folder / f"{pmid}.xml"

    def __contains__(self, pmid: object) -> bool:
        return isinstance(pmid, str) and self.path(pmid).is_file()

    def get(self, pmid: str) -> bytes | None:
        path = self.path(pmid)
        return path.read_bytes() if path.is_file() else None

    def put(self, pmid: str, article: bytes) -> None:
        _atomic_write(self.path(pmid), article)


@dataclass
class FetchReport:
    """What :func:`fetch_pubmed` did.

    Attributes:
        requested: the unique PMIDs asked for, in order.
        cached: those already in the cache (not fetched again).
        fetched: those fetched now.
        missing: those PubMed returned nothing for.
        failed: those not fetched because E-utilities kept failing (run again to resume).
        error: the failure, if any.
    """

    requested: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error: str | None = None


def _valid_pmids(pmids: Iterable[str]) -> list[str]:
    out = []
    for raw in pmids:
        for pmid in str(raw).replace(",", " ").split():
            if not pmid.isdigit():
                raise ValueError(f"not a PMID: {pmid!r} (PMIDs are digits only)")
            out.append(pmid)
    return list(dict.fromkeys(out))


def fetch_pubmed(
    pmids: Iterable[str],
    cache: PubMedCache,
    client: EutilsClient,
    log: Callable[[str], None] = lambda msg: None,
) -> FetchReport:
    """Fetch the PMIDs not yet cached, a batch at a time, caching each article at once.

    Stops at the first batch that still fails after the client's retries and reports
    the rest as ``failed``; everything fetched so far stays cached, so a later run resumes.

    Raises:
        ValueError: for something that is not a PMID.
    """
    report = FetchReport(requested=_valid_pmids(pmids))
    report.cached = [p for p in report.requested if p in cache]
    todo = [p for p in report.requested if p not in cache]
    size = client.settings.batch_size
    for start in range(0, len(todo), size):
        batch = todo[start : start + size]
        try:
            articles = client.efetch(batch)
        except EutilsError as exc:
            report.failed = todo[start:]
            report.error = str(exc)
            break
        for pmid in batch:
            if pmid in articles:
                cache.put(pmid, articles[pmid])
                report.fetched.append(pmid)
            else:
                report.missing.append(pmid)
        log(f"fetched {len(report.fetched)}/{len(todo)} PMIDs")
    return report


def write_pubmed_xml(pmids: Iterable[str], cache: PubMedCache, output: str | Path) -> int:
    """Write the cached articles of ``pmids`` as one PubMed XML file (atomically).

    Returns:
        How many articles were written (PMIDs not in the cache are left out).
    """
    articles = [a for p in pmids if (a := cache.get(p)) is not None]
    head = f'<?xml version="1.0" ?>\n{PUBMED_DOCTYPE}\n<PubmedArticleSet>\n'.encode()
    _atomic_write(Path(output), head + b"\n".join(articles) + b"\n</PubmedArticleSet>\n")
    return len(articles)


def pmids_from_references(settings: Settings) -> list[str]:
    """PMIDs of the indexed documents (by reference number), else of ``references.json``."""
    from assistant.errors import IndexProblem

    try:
        from assistant.search.index import Index

        metadata = Index.load(settings.index_dir).documents_metadata().values()
        records: list[Any] = sorted(metadata, key=lambda m: m.get("n") if isinstance(m.get("n"), int) else 10**9)
    except IndexProblem:
        path = Path(settings.corpus_dir) / "references.json"
        records = json.loads(path.read_text(encoding="utf-8"))["references"]
    return list(dict.fromkeys(str(r["pmid"]) for r in records if r.get("pmid")))


# --------------------------------------------------------------------------- command line


def add_fetch_parser(sub: Any) -> None:
    """Register ``fetch-pubmed`` on an argparse subparsers object."""
    p = sub.add_parser(
        "fetch-pubmed",
        help="fetch PubMed abstracts (NCBI E-utilities) into a PubMed XML file to ingest",
        description="Fetch PubMed records through NCBI E-utilities efetch, at most 3 requests/s "
        "(10 with an API key), with retries and an on-disk cache; a rerun resumes where an "
        "interrupted one stopped. Then: python -m assistant ingest OUTPUT.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--pmids", nargs="+", metavar="PMID", help="PMIDs (space or comma separated)")
    which.add_argument(
        "--from-references", action="store_true", help="the PMIDs of the indexed references (or references.json)"
    )
    p.add_argument("--output", type=Path, help="PubMed XML to write (default: corpus/pubmed/abstracts.xml)")
    p.add_argument(
        "--cache", type=Path, help="cache folder (default: $LBP_CACHE/pubmed or ~/.cache/lbp-assistant/pubmed)"
    )
    p.add_argument("--email", help="your email, sent to NCBI as they ask (default: $NCBI_EMAIL)")
    p.add_argument("--api-key", help="NCBI API key: 10 instead of 3 requests/s (default: $NCBI_API_KEY)")
    p.add_argument("--base-url", help=f"E-utilities URL (default: $NCBI_EUTILS_URL or {DEFAULT_EUTILS_URL})")
    p.add_argument("--batch-size", type=int_in(1, 200), help="PMIDs per request, 1-200 (default 100)")
    p.add_argument("--max-retries", type=non_negative_int, help="retries on 429/5xx/timeouts (default 5)")
    p.add_argument("--timeout", type=positive_float, help="seconds to wait for a response (default 30)")
    p.add_argument("--index", type=Path, help="index folder for --from-references (default: index/ or $LBP_INDEX)")
    p.add_argument("--corpus", type=Path, help="corpus folder (default: corpus/ or $LBP_CORPUS)")


def cmd_fetch_pubmed(args: argparse.Namespace) -> int:
    """Run ``fetch-pubmed``: 0 when every PMID is available, 1 otherwise."""
    settings = Settings.from_env(index_dir=args.index, corpus_dir=args.corpus)
    eutils = EutilsSettings.from_env(
        base_url=args.base_url,
        email=args.email,
        api_key=args.api_key,
        batch_size=args.batch_size,
        max_retries=args.max_retries,
        timeout=args.timeout,
    )
    if not eutils.email and eutils.base_url == DEFAULT_EUTILS_URL:
        print("warning: no email given (--email or NCBI_EMAIL); NCBI asks for one", file=sys.stderr)
    pmids = pmids_from_references(settings) if args.from_references else _valid_pmids(args.pmids)
    if not pmids:
        print("no PMIDs to fetch", file=sys.stderr)
        return 1
    cache = PubMedCache(args.cache or default_cache_dir())
    output = args.output or Path(settings.corpus_dir) / "pubmed" / "abstracts.xml"
    client = EutilsClient(eutils)
    report = fetch_pubmed(pmids, cache, client, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    written = write_pubmed_xml(report.requested, cache, output)
    print(
        f"{len(report.requested)} PMIDs: {len(report.cached)} from the cache ({cache.folder}), "
        f"{len(report.fetched)} fetched, {len(report.missing)} not found, {len(report.failed)} not fetched."
    )
    print(f"wrote {written} articles to {output}; next: python -m assistant ingest {output}")
    if report.missing:
        print(f"not in PubMed: {' '.join(report.missing)}")
    if report.error:
        print(f"error: {report.error}\nrun the same command again to resume.", file=sys.stderr)
    return 0 if written == len(report.requested) else 1
