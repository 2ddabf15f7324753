"""fetch-pubmed against a local E-utilities server (http.server on 127.0.0.1, a free port).

The server answers ``/entrez/eutils/efetch.fcgi?db=pubmed&id=...`` with PubmedArticleSet XML
built from the fictional articles of ``fixtures/ingest/pubmed_efetch.xml``, and can be told
to fail the next requests (HTTP 503, 429 with Retry-After, 400, or a response too slow for
the client's timeout).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from assistant.config import Settings
from assistant.sources.formats import parse_file
from assistant.sources.pubmed import (
    EutilsClient,
    EutilsError,
    EutilsSettings,
    PubMedCache,
    RateLimiter,
    default_cache_dir,
    fetch_pubmed,
    pmids_from_references,
    retry_delay,
    split_pubmed_xml,
    write_pubmed_xml,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ingest"
ROOT = Path(__file__).parents[2]
HEADER = (
    '<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
)


@dataclass
class FakeEutils:
    """State of the local server: the articles it knows, scripted failures, requests seen."""

    articles: dict[str, str]
    failures: list[tuple[str, object]] = field(default_factory=list)
    requests: list[tuple[float, dict[str, list[str]]]] = field(default_factory=list)
    base_url: str = ""

    def fail_next(self, *failures: tuple[str, object]) -> None:
        self.failures.extend(failures)


def _fixture_articles() -> dict[str, str]:
    root = ET.parse(FIXTURES / "pubmed_efetch.xml").getroot()
    out = {}
    for article in root:
        pmid = article.findtext("./MedlineCitation/PMID") or article.findtext("./BookDocument/PMID")
        out[str(pmid)] = ET.tostring(article, encoding="unicode")
    return out


def _handler(fake: FakeEutils) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = parse_qs(url.query)
            fake.requests.append((time.monotonic(), params))
            if url.path != "/entrez/eutils/efetch.fcgi":
                self._send(404, b"not found", "text/plain")
                return
            if fake.failures:
                kind, value = fake.failures.pop(0)
                if kind == "status" and value == 429:
                    body = b'{"error":"API rate limit exceeded","count":"4","limit":"3"}'
                    self._send(429, body, "application/json", {"Retry-After": "2"})
                    return
                if kind == "status":
                    self._send(int(str(value)), b"<html>Service unavailable</html>", "text/html")
                    return
                if kind == "slow":
                    time.sleep(float(str(value)))  # longer than the client's timeout
            ids = params.get("id", [""])[0].split(",")
            found = "\n".join(fake.articles[i] for i in ids if i in fake.articles)
            body = f"{HEADER}<PubmedArticleSet>\n{found}\n</PubmedArticleSet>\n".encode()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                self._send(200, body, "text/xml; charset=UTF-8")

    return Handler


@pytest.fixture
def eutils() -> Iterator[FakeEutils]:
    fake = FakeEutils(_fixture_articles())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/entrez/eutils/"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _client(fake: FakeEutils, sleeps: list[float] | None = None, **overrides: Any) -> EutilsClient:
    """A client for the local server that records its retry waits instead of sleeping."""
    base = EutilsSettings(
        base_url=fake.base_url, email="tester@example.org", backoff=0.5, max_backoff=10.0, timeout=5.0
    )
    recorded = sleeps if sleeps is not None else []
    return EutilsClient(replace(base, **overrides), sleep=recorded.append, log=lambda msg: None)


# --------------------------------------------------------------------------- pure parts


def test_retry_delay_doubles_caps_and_honours_retry_after() -> None:
    assert [retry_delay(a, 0.5, 3.0) for a in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert retry_delay(0, 0.5, 10.0, retry_after="2") == 2.0
    assert retry_delay(3, 0.5, 10.0, retry_after="2") == 4.0  # our own wait is longer
    assert retry_delay(0, 0.5, 10.0, retry_after="Wed, 21 Oct 2015 07:28:00 GMT") == 0.5


def test_rate_limiter_spaces_calls() -> None:
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))
        now[0] += seconds

    limiter = RateLimiter(3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert waits == [0.35, 0.35]  # 1.05 / 3
    now[0] += 5.0
    limiter.wait()
    assert waits == [0.35, 0.35]  # no wait after a pause


def test_rate_limiter_counts_from_a_late_wake_up() -> None:
    now = [0.0]
    waits: list[float] = []

    def oversleep(seconds: float) -> None:
        waits.append(round(seconds, 6))
        now[0] += seconds + 0.2  # the OS woke us 0.2 s late

    limiter = RateLimiter(10, clock=lambda: now[0], sleep=oversleep)
    limiter.wait()  # t=0
    limiter.wait()  # asks for 0.105, wakes at 0.305
    limiter.wait()  # must still wait a full 0.105 after 0.305
    assert waits == [0.105, 0.105]


def test_limits_follow_the_api_key() -> None:
    assert EutilsSettings().requests_per_second == 3
    assert EutilsSettings(api_key="k").requests_per_second == 10


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCBI_EUTILS_URL", "http://127.0.0.1:1/eutils/")
    monkeypatch.setenv("NCBI_EMAIL", "env@example.org")
    monkeypatch.setenv("NCBI_API_KEY", "envkey")
    s = EutilsSettings.from_env(email="flag@example.org", api_key=None)
    assert (s.base_url, s.email, s.api_key) == ("http://127.0.0.1:1/eutils/", "flag@example.org", "envkey")
    with pytest.raises(ValueError, match="batch size"):
        EutilsSettings.from_env(batch_size=500)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LBP_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "pubmed"
    monkeypatch.delenv("LBP_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "lbp-assistant" / "pubmed"


def test_split_keeps_articles_byte_for_byte() -> None:
    data = (FIXTURES / "pubmed_efetch.xml").read_bytes()
    articles = split_pubmed_xml(data)
    assert list(articles) == ["99000001", "99000002", "99000003", "99000004", "99000005"]
    assert articles["99000001"] in data
    assert articles["99000005"].startswith(b"<PubmedBookArticle>")
    assert articles["99000005"].endswith(b"</PubmedBookArticle>")


def test_split_refuses_an_error_page() -> None:
    with pytest.raises(EutilsError, match="did not send a PubmedArticleSet"):
        split_pubmed_xml(b"<eFetchResult><ERROR>Empty id list</ERROR></eFetchResult>")
    with pytest.raises(EutilsError, match="malformed XML"):
        split_pubmed_xml(b'{"error":"API rate limit exceeded"}')


# --------------------------------------------------------------------------- against the local server


def test_fetch_caches_and_writes_ingestable_xml(eutils: FakeEutils, tmp_path: Path) -> None:
    cache = PubMedCache(tmp_path / "cache")
    client = _client(eutils, api_key="secret")
    report = fetch_pubmed(["99000001", "99000002,99000003", "99000099", "99000001"], cache, client)
    assert report.requested == ["99000001", "99000002", "99000003", "99000099"]
    assert (report.fetched, report.missing, report.failed) == (["99000001", "99000002", "99000003"], ["99000099"], [])
    assert sorted(p.name for p in cache.folder.iterdir()) == ["99000001.xml", "99000002.xml", "99000003.xml"]
    (_, params) = eutils.requests[0]
    assert params["db"] == ["pubmed"] and params["retmode"] == ["xml"]
    assert params["id"] == ["99000001,99000002,99000003,99000099"]
    assert (params["tool"], params["email"], params["api_key"]) == (
        ["lbp-assistant"],
        ["tester@example.org"],
        ["secret"],
    )

    out = tmp_path / "abstracts.xml"
    assert write_pubmed_xml(report.requested, cache, out) == 3
    parsed = parse_file(out)
    assert parsed.format == "pubmed-xml" and parsed.errors == ()
    assert [r.pmid for r in parsed.records] == ["99000001", "99000002", "99000003"]
    assert "Zephyr Back Index" in parsed.records[0].abstract


def test_cached_pmids_are_not_fetched_again(eutils: FakeEutils, tmp_path: Path) -> None:
    cache = PubMedCache(tmp_path)
    fetch_pubmed(["99000001"], cache, _client(eutils))
    again = fetch_pubmed(["99000001"], cache, _client(eutils))
    assert (again.cached, again.fetched) == (["99000001"], [])
    assert len(eutils.requests) == 1


def test_retries_503_429_and_timeouts_with_backoff(eutils: FakeEutils, tmp_path: Path) -> None:
    eutils.fail_next(("status", 503), ("status", 429), ("slow", 2.5))
    sleeps: list[float] = []
    client = _client(eutils, sleeps, timeout=1.0)
    report = fetch_pubmed(["99000002"], PubMedCache(tmp_path), client)
    assert report.fetched == ["99000002"]
    assert len(eutils.requests) == 4
    # backoff 0.5 doubling: 0.5, then Retry-After 2 (longer than 1.0), then 2.0
    assert sleeps == [0.5, 2.0, 2.0]


def test_a_bad_request_is_not_retried(eutils: FakeEutils) -> None:
    eutils.fail_next(("status", 400))
    client = _client(eutils)
    with pytest.raises(EutilsError, match="HTTP 400"):
        client.efetch(["99000001"])
    assert len(eutils.requests) == 1


def test_gives_up_after_max_retries_and_resumes(eutils: FakeEutils, tmp_path: Path) -> None:
    cache = PubMedCache(tmp_path)
    pmids = ["99000001", "99000002", "99000003", "99000004"]
    eutils.fail_next(("ok", None), ("status", 500), ("status", 502), ("status", 504))
    first = fetch_pubmed(pmids, cache, _client(eutils, max_retries=2, batch_size=2))
    assert first.fetched == ["99000001", "99000002"]
    assert first.failed == ["99000003", "99000004"]
    assert first.error is not None and "giving up after 3 attempts (HTTP 504)" in first.error
    assert len(eutils.requests) == 4  # one good batch, then 1 + 2 retries

    second = fetch_pubmed(pmids, cache, _client(eutils, batch_size=2))
    assert second.cached == ["99000001", "99000002"]
    assert (second.fetched, second.failed) == (["99000003", "99000004"], [])
    assert eutils.requests[-1][1]["id"] == ["99000003,99000004"]


def test_resumes_after_an_interruption(eutils: FakeEutils, tmp_path: Path) -> None:
    cache = PubMedCache(tmp_path)
    pmids = ["99000001", "99000002", "99000003"]

    def interrupt(message: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_pubmed(pmids, cache, _client(eutils, batch_size=1), log=interrupt)
    assert "99000001" in cache and "99000002" not in cache
    report = fetch_pubmed(pmids, cache, _client(eutils, batch_size=1))
    assert (report.cached, report.fetched) == (["99000001"], ["99000002", "99000003"])
    assert [p["id"] for _, p in eutils.requests] == [["99000001"], ["99000002"], ["99000003"]]


@pytest.mark.parametrize(("api_key", "min_gap"), [(None, 1 / 3), ("key", 1 / 10)])
def test_requests_respect_ncbi_rate_limits(
    eutils: FakeEutils, tmp_path: Path, api_key: str | None, min_gap: float
) -> None:
    client = _client(eutils, api_key=api_key, batch_size=1)
    sent: list[float] = []
    wait = client.limiter.wait

    def recording_wait() -> None:
        wait()
        sent.append(time.monotonic())

    client.limiter.wait = recording_wait  # type: ignore[method-assign]
    fetch_pubmed(["99000001", "99000002", "99000003", "99000004"], PubMedCache(tmp_path), client)
    # what the client controls: every request leaves at least 1/3 s (1/10 s with a key) after the last
    assert len(sent) == 4
    assert min(b - a for a, b in itertools.pairwise(sent)) >= min_gap
    # what NCBI sees: arrival times, which scheduling jitter can shift a little either way
    arrivals = [t for t, _ in eutils.requests]
    assert arrivals[-1] - arrivals[0] >= 3 * min_gap - 0.05


def test_cli_fetch_pubmed(eutils: FakeEutils, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.cli import main

    monkeypatch.setenv("NCBI_EUTILS_URL", eutils.base_url)
    out = tmp_path / "out" / "abstracts.xml"
    argv = ["fetch-pubmed", "--pmids", "99000001", "99000003", "--output", str(out), "--cache", str(tmp_path / "c")]
    assert main([*argv, "--email", "cli@example.org"]) == 0
    assert [r.pmid for r in parse_file(out).records] == ["99000001", "99000003"]
    assert eutils.requests[0][1]["email"] == ["cli@example.org"]
    assert main(["fetch-pubmed", "--pmids", "99000099", "--output", str(out), "--cache", str(tmp_path / "c")]) == 1
    assert main(["fetch-pubmed", "--pmids", "12ab"]) == 2


def test_pmids_from_references_json_when_there_is_no_index(tmp_path: Path) -> None:
    settings = Settings(corpus_dir=ROOT / "corpus", index_dir=tmp_path / "no-index")
    pmids = pmids_from_references(settings)
    assert len(pmids) == 29
    assert pmids[0] == "21041955"  # reference 4 is the first with a PMID
    assert all(p.isdigit() for p in pmids)
