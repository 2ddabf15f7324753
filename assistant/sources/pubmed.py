"""Fetch PubMed abstracts through NCBI E-utilities, politely, with a cache.

``python -m assistant fetch-pubmed (--pmids ID... | --from-references)`` asks ``efetch``
for the PubMed XML of each PMID (through :class:`~assistant.sources.eutils.EutilsClient`,
which keeps to NCBI's rate limits and retries), keeps every article in an on-disk cache (one
file per PMID, written atomically), and writes the requested articles to one PubMed XML file
that ``python -m assistant ingest`` reads. PMIDs already in the cache are never fetched
again, so an interrupted run resumes where it stopped.

The XML is read by :func:`Bio.Entrez.read` when the output file is ingested. Environment:
``NCBI_EMAIL``, ``NCBI_API_KEY``, ``NCBI_EUTILS_URL`` (see :mod:`assistant.sources.eutils`),
``LBP_CACHE`` (cache root; PubMed articles go to ``<root>/pubmed``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.arguments import int_in, non_negative_int, positive_float
from assistant.config import Settings
from assistant.sources.eutils import (
    DEFAULT_EUTILS_URL,
    EutilsClient,
    EutilsError,
    EutilsSettings,
    RateLimiter,
    retry_delay,
    split_pubmed_xml,
)

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

PUBMED_DOCTYPE = (
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">'
)


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
