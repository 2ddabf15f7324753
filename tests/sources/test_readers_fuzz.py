"""The ingest readers under fire: only FormatError may come out, good records survive bad ones.

- a bounded run of the mutation fuzzer (benchmarks/fuzz_readers.py) over every fixture;
- every input that once crashed a reader (tests/fixtures/ingest/crashes/), replayed;
- property-based tests (hypothesis) of every reader: any text, any bytes; generated files
  whose titles, PMIDs and DOIs must come back; one broken record among good ones.

The fuzz budget is about half a minute on a 2-core machine; ``LBP_FUZZ_MUTATIONS`` (per
format; the benchmark's default is 10000) and ``LBP_FUZZ_SEED`` change it.
"""

from __future__ import annotations

import contextlib
import json
import os
import string
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.errors import FormatError
from assistant.sources.formats import FORMATS, ParsedFile, Record, parse_bytes, parse_text
from assistant.sources.ingest import plan_ingest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.fuzz_readers import (  # noqa: E402
    FIXTURE_FORMATS,
    FIXTURES,
    check,
    fuzz,
    load_fixture,
    load_fixtures,
    table,
)

CRASHES = FIXTURES / "crashes"
# Mutants per format in CI: PubMed XML loads its DTD for each parse (about 75 mutants a
# second), BibTeX about 300, the others thousands.
CI_MUTATIONS = {"pubmed-xml": 1200, "bibtex": 1500, "medline": 3000, "ris": 3000, "beir": 3000, "reprint": 3000}
SEED = int(os.environ.get("LBP_FUZZ_SEED", "20240501"))


# --------------------------------------------------------------------------- mutation fuzzing


@pytest.mark.parametrize("fmt", sorted(CI_MUTATIONS))
def test_mutated_fixtures_raise_only_named_errors_and_keep_untouched_records(fmt: str) -> None:
    count = int(os.environ.get("LBP_FUZZ_MUTATIONS", "0")) or CI_MUTATIONS[fmt]
    failures: list[str] = []

    def note(fixture: Any, mutant: bytes, outcome: Any) -> None:
        if len(failures) < 5:
            what = outcome.unnamed or (outcome.lost and f"lost {outcome.lost}") or outcome.caught[0].__cause__
            failures.append(f"{fixture.name}: {what!r}\n  mutant: {mutant[:300]!r}")

    stats = fuzz(load_fixtures([fmt]), count, SEED, on_failure=note, deadline=time.perf_counter() + 60)
    print(table(stats))
    st_ = stats[fmt]
    assert st_.mutations >= min(count, 500)
    # caught: a library's (or our) exception that only the record-level safety net stopped
    assert (st_.unnamed, st_.lost, st_.caught) == (0, 0, 0), "\n".join(failures)


# --------------------------------------------------------------------------- crashes found


def _source_fixture(crash: Path) -> str:
    """The fixture a crash input was mutated from: the longest name whose stem starts it."""
    names = [n for n in FIXTURE_FORMATS if crash.stem.startswith(Path(n).stem)]
    return max(names, key=len)


def _edit_span(original: bytes, mutant: bytes) -> tuple[int, int]:
    """The span of ``original`` that differs in ``mutant`` (common prefix and suffix kept)."""
    prefix = 0
    while prefix < min(len(original), len(mutant)) and original[prefix] == mutant[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < min(len(original), len(mutant)) - prefix
        and original[len(original) - 1 - suffix] == mutant[len(mutant) - 1 - suffix]
    ):
        suffix += 1
    return prefix, len(original) - suffix


@pytest.mark.parametrize("crash", sorted(p for p in CRASHES.iterdir() if p.suffix != ".md"), ids=lambda p: p.name)
def test_inputs_that_once_crashed_a_reader(crash: Path) -> None:
    """Each crashed a reader (or blocked its whole file) once: named errors, good records kept."""
    name = _source_fixture(crash)
    fixture = load_fixture(FIXTURES / name, FIXTURE_FORMATS[name])
    mutant = crash.read_bytes()
    outcome = check(fixture, mutant, _edit_span(fixture.data, mutant))
    assert outcome.unnamed is None
    assert outcome.lost == []
    assert outcome.caught == []


def test_the_crash_fixtures_name_the_record_and_the_reason() -> None:
    def errors(name: str) -> list[str]:
        return [str(e).split(f"{name}:", 1)[1] for e in parse_bytes((CRASHES / name).read_bytes(), name).errors]

    assert errors("references-rispy-keyerror-title.ris")[0].startswith("28: record 3 ")
    last = parse_bytes((CRASHES / "references-rispy-keyerror-title.ris").read_bytes()).records[-1]
    assert last.title == "Fictional record whose title comes last"  # the record rispy stumbled after
    assert (
        "41: record 3: a continuation line with no tag before it"
        in errors("medline-continuation-starts-a-block-2.nbib")[0]
    )
    assert errors("medline-latin1-byte.nbib")[0] == (
        "28: record 2 (PMID 99000021): the text is not valid UTF-8 (save the file as UTF-8)"
    )
    assert errors("corpus-mesh-not-a-list.jsonl")[0] == (
        "1: record 1 (_id 1): 'metadata.mesh' must be a string or a list of strings"
    )


# --------------------------------------------------------------------------- any input


def _read(text: str, fmt: str) -> ParsedFile:
    pf = parse_text(text, fmt, "prop.txt")
    plan_ingest([pf], {})
    return pf


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # Bio.Entrez + DTD

# Text a bit like the formats: their tags and separators among arbitrary characters.
PIECES = st.sampled_from(
    [
        "\n",
        "\n\n",
        "TY  - JOUR\n",
        "ER  - \n",
        "TI  - ",
        "PMID- 1\n",
        "      ",
        "@article{k,",
        "title={",
        "}",
        "{",
        '{"_id": "1", "title": "',
        '"}',
        "<PubmedArticle>",
        "</PubmedArticle>",
        "<MedlineCitation><PMID>1</PMID><Article><ArticleTitle>",
        "</ArticleTitle></Article></MedlineCitation>",
        "UpToDate\n",
        "  1. ",
        "[1]",
        "\x00",
        "\ufeff",
        "\udcff",
    ]
)
FORMAT_LIKE = st.lists(st.one_of(PIECES, st.text(max_size=20)), max_size=30).map("".join)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pubmed-xml"])
@FAST
@given(text=FORMAT_LIKE)
def test_any_text_gives_records_or_named_errors(fmt: str, text: str) -> None:
    with contextlib.suppress(FormatError):
        _read(text, fmt)


@SLOW
@given(text=FORMAT_LIKE)
def test_any_text_as_pubmed_xml_gives_records_or_named_errors(text: str) -> None:
    with contextlib.suppress(FormatError):
        _read(text, "pubmed-xml")


@FAST
@given(data=st.binary(max_size=400))
def test_any_bytes_give_records_or_named_errors(data: bytes) -> None:
    try:
        pf = parse_bytes(data, "bytes.bin")
        plan_ingest([pf], {})
    except FormatError as exc:
        str(exc).encode("utf-8")


# --------------------------------------------------------------------------- generated records

WORD = st.text(alphabet=string.ascii_letters + string.digits + "éüßøñ", min_size=1, max_size=10)
TITLE = st.lists(WORD, min_size=2, max_size=8).map(" ".join)
PMID = st.integers(min_value=1, max_value=99_999_999).map(str)
DOI = st.tuples(
    st.integers(1000, 99999), st.text(alphabet=string.ascii_lowercase + string.digits + ".", min_size=1, max_size=12)
).map(lambda t: f"10.{t[0]}/x{t[1]}".rstrip("."))
RECORD = st.fixed_dictionaries({"title": TITLE, "pmid": PMID, "doi": DOI, "abstract": TITLE})
RECORDS = st.lists(RECORD, min_size=1, max_size=4, unique_by=lambda r: r["title"])


def _medline(r: dict[str, str], k: int) -> str:
    return f"PMID- {r['pmid']}\nTI  - {r['title']}\nAB  - {r['abstract']}\nLID - {r['doi']} [doi]\n\n"


def _ris(r: dict[str, str], k: int) -> str:
    return f"TY  - JOUR\nTI  - {r['title']}\nAB  - {r['abstract']}\nAN  - {r['pmid']}\nDO  - {r['doi']}\nER  - \n\n"


def _bibtex(r: dict[str, str], k: int) -> str:
    return (
        f"@article{{key{k},\n  title = {{{r['title']}}},\n  abstract = {{{r['abstract']}}},\n"
        f"  pmid = {{{r['pmid']}}},\n  doi = {{{r['doi']}}},\n}}\n\n"
    )


def _beir(r: dict[str, str], k: int) -> str:
    obj = {"_id": f"d{k}", "title": r["title"], "text": r["abstract"], "metadata": {"pmid": r["pmid"], "doi": r["doi"]}}
    return json.dumps(obj, ensure_ascii=k % 2 == 0) + "\n"


def _pubmed(r: dict[str, str], k: int) -> str:
    return (
        f"<PubmedArticle><MedlineCitation><PMID>{r['pmid']}</PMID><Article>"
        f"<Journal><Title>J Fict</Title></Journal><ArticleTitle>{r['title']}</ArticleTitle>"
        f'<ELocationID EIdType="doi">{r["doi"]}</ELocationID>'
        f"<Abstract><AbstractText>{r['abstract']}</AbstractText></Abstract>"
        f"</Article></MedlineCitation></PubmedArticle>\n"
    )


WRITERS = {"medline": _medline, "ris": _ris, "bibtex": _bibtex, "beir": _beir, "pubmed-xml": _pubmed}


def _file(fmt: str, parts: list[str]) -> str:
    body = "".join(parts)
    if fmt == "pubmed-xml":
        return f'<?xml version="1.0"?>\n<PubmedArticleSet>\n{body}</PubmedArticleSet>\n'
    return body


def _ids(records: tuple[Record, ...]) -> list[tuple[str, str | None, str | None]]:
    return [(r.title, r.pmid, r.doi) for r in records]


def _round_trip(fmt: str, records: list[dict[str, str]]) -> None:
    text = _file(fmt, [WRITERS[fmt](r, k) for k, r in enumerate(records)])
    pf = parse_bytes(text.encode("utf-8"), "gen")
    assert (pf.format, pf.errors) == (fmt, ())
    assert _ids(pf.records) == [(r["title"], r["pmid"], r["doi"]) for r in records]
    assert [r.abstract for r in pf.records] == [r["abstract"] for r in records]


@pytest.mark.parametrize("fmt", ["medline", "ris", "bibtex", "beir"])
@FAST
@given(records=RECORDS)
def test_generated_records_round_trip(fmt: str, records: list[dict[str, str]]) -> None:
    _round_trip(fmt, records)


@SLOW
@given(records=RECORDS)
def test_generated_pubmed_records_round_trip(records: list[dict[str, str]]) -> None:
    _round_trip("pubmed-xml", records)


@FAST
@given(titles=st.lists(TITLE, min_size=1, max_size=5, unique=True))
def test_generated_reprint_references_round_trip(titles: list[str]) -> None:
    refs = "\n".join(f"  {k}. Author A, Writer B. {t}. J Fict 2020; {k}:1." for k, t in enumerate(titles, start=1))
    markers = ",".join(str(k) for k in range(1, len(titles) + 1))
    text = (
        "Official reprint from UpToDate\n\nA fictional topic\n\n"
        f"A fictional body paragraph that cites every reference [{markers}].\n\n{refs}\n"
    )
    pf = parse_bytes(text.encode("utf-8"), "gen.txt")
    (topic,) = pf.topics
    assert (pf.format, pf.errors) == ("reprint", ())
    assert [r.title for r in topic.references] == titles
    assert [r.authors for r in topic.references] == [("Author A", "Writer B")] * len(titles)


# Ways one record can be broken: cut short, garbage inside it, its start tag damaged.
DAMAGE = st.one_of(
    st.tuples(st.just("cut"), st.floats(0.05, 0.95)),
    st.tuples(st.just("garbage"), st.text(max_size=40)),
    st.tuples(st.just("nul"), st.just("\x00\udcff")),
)


def _damaged(part: str, damage: tuple[str, Any]) -> str:
    kind, value = damage
    if kind == "cut":
        return part[: int(len(part) * value)].rstrip("\n") + "\n\n"
    middle = len(part) // 2
    return part[:middle] + value + part[middle:]


@pytest.mark.parametrize("fmt", ["medline", "ris", "bibtex", "beir"])
@FAST
@given(records=RECORDS.filter(lambda r: len(r) >= 2), which=st.integers(0, 3), damage=DAMAGE)
def test_one_broken_record_never_blocks_the_others(
    fmt: str, records: list[dict[str, str]], which: int, damage: tuple[str, Any]
) -> None:
    which %= len(records)
    parts = [WRITERS[fmt](r, k) for k, r in enumerate(records)]
    parts[which] = _damaged(parts[which], damage)
    text = _file(fmt, parts)
    try:
        pf = parse_bytes(text.encode("utf-8", "surrogateescape"), "gen", fmt)
    except FormatError:
        pytest.fail("one broken record made the whole file unreadable")
    found = _ids(pf.records)
    for k, r in enumerate(records):
        if k != which:
            assert (r["title"], r["pmid"], r["doi"]) in found


@SLOW
@given(records=RECORDS.filter(lambda r: len(r) >= 2), which=st.integers(0, 3), damage=DAMAGE)
def test_one_broken_pubmed_article_never_blocks_the_others(
    records: list[dict[str, str]], which: int, damage: tuple[str, Any]
) -> None:
    which %= len(records)
    parts = [_pubmed(r, k) for k, r in enumerate(records)]
    parts[which] = _damaged(parts[which], damage)
    pf = parse_bytes(_file("pubmed-xml", parts).encode("utf-8", "surrogateescape"), "gen.xml", "pubmed-xml")
    found = _ids(pf.records)
    for k, r in enumerate(records):
        if k != which:
            assert (r["title"], r["pmid"], r["doi"]) in found


# --------------------------------------------------------------------------- the BEIR data contract (strict)

BEIR_LIKE = st.lists(
    st.one_of(
        st.sampled_from(
            ['{"_id": "q1", "text": "x"}\n', '{"_id": 1, "title": 2}\n', "q1\td1\t1\n", "q1 Q0 d1 1 0.5 run\n"]
        ),
        st.sampled_from(["[[[[[[", "9" * 5000, "\n", "\ufeff", "\t", "NaN", "-", '"\\ud800"']),
        st.text(max_size=20),
    ),
    max_size=12,
).map("".join)


@FAST
@given(text=BEIR_LIKE, junk=st.binary(max_size=3))
def test_beir_readers_raise_only_named_errors(text: str, junk: bytes) -> None:
    """assistant.evaluation.beir reads evaluation data strictly: a bad line is a FormatError, nothing else."""
    import tempfile

    from assistant.evaluation.beir import read_corpus, read_qrels, read_queries, read_trec_run

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data"
        path.write_bytes(text.encode("utf-8", "surrogatepass") + junk)
        for read in (lambda p: list(read_corpus(p)), read_queries, read_qrels, read_trec_run):
            try:
                read(path)
            except FormatError as exc:
                str(exc).encode("utf-8")
