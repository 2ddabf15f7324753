"""Mutation fuzzer for the ingest readers: only the project's named errors may come out.

Every fixture of ``tests/fixtures/ingest/`` (one or two per format) is mutated many times:
byte ranges deleted, duplicated or replaced, separators inserted (newlines, blank lines,
``ER  -``, ``TY  -``, ``PMID-``, ``@article{``, braces), BOMs, NULs, XML and tag fragments,
invalid UTF-8, single random bytes, whole lines dropped or doubled, the file cut short, and
up to three of these at once. Each mutant goes through what ``python -m assistant ingest``
runs before it touches the index: format detection and parsing
(:func:`assistant.sources.formats.parse_bytes`) and planning the documents
(:func:`assistant.sources.ingest.plan_ingest`, which calls ``record_to_document`` and renumbers
topic citations), and every string a record or an error holds must be printable as UTF-8.

Counted per format:

- ``unnamed``: an exception other than :class:`~assistant.errors.FormatError` came out of
  the readers (the target is 0);
- ``lost``: a mutant with one edit lost a good record of the original file that the edit
  did not touch (the target is 0: a broken record never blocks the good records of its file);
- ``caught``: record errors that are a library's exception caught at the record (named and
  skipped, but worth a look: a check of its own would give a better message);
- ``file errors``: mutants the format of which could no longer be told (whole-file errors);
- ``record errors``: reported records, all mutants together;
- ``mut/s``: mutants read per second.

The run is seeded and reproducible (``--seed``); a mutant that breaks a rule is written to
``--save DIR`` (default ``artifacts/fuzz-crashes/``) so that it can become a fixture of
``tests/fixtures/ingest/crashes/``, which ``tests/test_readers_fuzz.py`` replays.

    .venv/bin/python benchmarks/fuzz_readers.py [--mutations 10000] [--seed 0] [--format ris ...]

``--mutations`` is per format (default 10,000), split between that format's fixtures. The CI
test (``tests/test_readers_fuzz.py``) runs the same code with a bounded number.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from assistant.errors import FormatError  # noqa: E402
from assistant.sources.formats import ParsedFile, Record, parse_bytes  # noqa: E402
from assistant.sources.ingest import plan_ingest  # noqa: E402

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "ingest"
# The fixtures and the format each is written in.
FIXTURE_FORMATS = {
    "pubmed_efetch.xml": "pubmed-xml",
    "pubmed_bad.xml": "pubmed-xml",
    "medline.nbib": "medline",
    "references.ris": "ris",
    "library.bib": "bibtex",
    "corpus.jsonl": "beir",
    "topic-reprint.txt": "reprint",
}
# Where a record starts, per format (the isolation check needs the records' byte spans).
RECORD_STARTS = {
    "pubmed-xml": re.compile(rb"<Pubmed(?:Book)?Article>"),
    "medline": re.compile(rb"^PMID- ", re.M),
    "ris": re.compile(rb"^TY  - ", re.M),
    "bibtex": re.compile(rb"^@", re.M),
    "beir": re.compile(rb"^(?=.)", re.M),
    "reprint": re.compile(rb"^ *\d+\. ", re.M),
}
# What the mutations insert or replace bytes with.
TOKENS: tuple[bytes, ...] = (
    b"\n",
    b"\r\n",
    b"\n\n",
    b"\r",
    b" ",
    b"      ",
    b"\t",
    b"ER  - \n",
    b"\nER  - ",
    b"TY  - JOUR\n",
    b"\nTY  - ",
    b"TI  - ",
    b"AU  - ",
    b"UK  - x\n",
    b"PMID- 1\n",
    b"\nPMID- ",
    b"AB  - ",
    b"@article{",
    b"\n@misc{x,\n",
    b"@string{",
    b"@comment{",
    b"}",
    b"{",
    b"}}",
    b"\\",
    b"\\'",
    b"$",
    b"%",
    b"=",
    b",",
    b'"',
    b"#",
    b"~",
    b"\xef\xbb\xbf",  # UTF-8 BOM
    b"\xff\xfe",  # UTF-16 BOM
    b"\x00",
    b"\x00\x00\x00",
    b"\xc3",  # a cut UTF-8 sequence
    b"\x80",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xe2\x80\xa8",  # LINE SEPARATOR
    b"\x0c",
    b"<",
    b">",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&undefined;",
    b"<i>",
    b"</i>",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?xml version='1.0'?>",
    b"<!DOCTYPE x SYSTEM 'http://example.invalid/x.dtd'>",
    b"<PubmedArticle>",
    b"</PubmedArticle>",
    b"<PubmedArticleSet>",
    b"<MedlineCitation>",
    b"</MedlineCitation>",
    b"<Article>",
    b"<AbstractText>",
    b"<MadeUp>",
    b"[1]",
    b"[99999999]",
    b"[2-1]",
    b"  1. ",
    b"\n  7. ",
    b"\n  2. X. Y. J 2000; 1:1.\n",
    b"UpToDate",
    b'{"_id": "x"}',
    b'{"_id": 1, "title": "T", "text": "A", "metadata": {"mesh": 3}}\n',
    b"[[[[[[[[",
    b'"\\ud800"',
    b"1e999",
    b"9" * 40,
)


@dataclass(frozen=True)
class Fixture:
    """A fixture and what an untouched copy yields: its records' byte spans and keys."""

    name: str
    format: str
    data: bytes
    spans: tuple[tuple[int, int], ...]  # [start, end) of each record, in order
    good: tuple[tuple[int, tuple[str, ...]], ...]  # (span index, key) of each good record
    topic: str = ""  # a reprint's topic title


def _key(record: Record) -> tuple[str, ...]:
    return (record.title, record.abstract, record.pmid or "", record.doi or "", *record.authors)


def _records(pf: ParsedFile) -> list[Record]:
    return [*pf.records, *(r for t in pf.topics for r in t.references)]


def load_fixture(path: Path, fmt: str) -> Fixture:
    """The fixture at ``path`` with the spans of its records and which of them are good."""
    data = path.read_bytes()
    starts = [m.start() for m in RECORD_STARTS[fmt].finditer(data)]
    spans = tuple(zip(starts, [*starts[1:], len(data)], strict=True))
    line_of = {data.count(b"\n", 0, start) + 1: k for k, (start, _) in enumerate(spans)}
    pf = parse_bytes(data, path.name, fmt)
    good = []
    for record in _records(pf):
        if fmt == "reprint":  # "reference n": the n-th numbered line
            good.append((int(record.where.split()[-1]) - 1, _key(record)))
        else:
            line = int(record.where.split(",")[0].split()[-1])
            good.append((line_of[line], _key(record)))
    topic = pf.topics[0].topic.title if pf.topics else ""
    return Fixture(path.name, fmt, data, spans, tuple(good), topic)


def load_fixtures(formats: Iterable[str] | None = None) -> list[Fixture]:
    wanted = set(formats) if formats else None
    return [
        load_fixture(FIXTURES / name, fmt) for name, fmt in FIXTURE_FORMATS.items() if wanted is None or fmt in wanted
    ]


# --------------------------------------------------------------------------- mutations


def _line_bounds(data: bytes, at: int) -> tuple[int, int]:
    start = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    return start, len(data) if end < 0 else end + 1


def mutate_once(data: bytes, rng: random.Random) -> tuple[bytes, tuple[int, int]]:
    """One random edit of ``data`` and the span ``[a, b)`` of the original it touched."""
    n = len(data)
    a = rng.randrange(n + 1)
    b = min(n, a + rng.choice((1, 1, 2, 3, 5, 8, 16, 40, 120)))
    op = rng.randrange(9)
    if op == 0:  # delete
        return data[:a] + data[b:], (a, b)
    if op == 1:  # duplicate
        return data[:b] + data[a:b] + data[b:], (a, b)
    if op == 2:  # replace with a token
        return data[:a] + rng.choice(TOKENS) + data[b:], (a, b)
    if op in (3, 4):  # insert a token
        return data[:a] + rng.choice(TOKENS) + data[a:], (a, a)
    if op == 5:  # one random byte
        return data[:a] + bytes([rng.randrange(256)]) + data[a + 1 :], (a, min(n, a + 1))
    if op == 6:  # cut the file short
        return data[:a], (a, n)
    start, end = _line_bounds(data, min(a, n - 1))
    if op == 7:  # drop a line
        return data[:start] + data[end:], (start, end)
    return data[:end] + data[start:end] + data[end:], (start, end)  # double a line


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, tuple[int, int] | None]:
    """A mutant of ``data``: usually one edit (with its span), sometimes two or three (None)."""
    edits = rng.choice((1, 1, 1, 1, 2, 3))
    mutant, span = mutate_once(data, rng)
    for _ in range(edits - 1):
        mutant, _ = mutate_once(mutant, rng)
    return mutant, span if edits == 1 else None


# --------------------------------------------------------------------------- one mutant


@dataclass
class Outcome:
    """What one mutant did."""

    parsed: ParsedFile | None = None
    file_error: FormatError | None = None
    unnamed: BaseException | None = None
    lost: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def broke_a_rule(self) -> bool:
        """An unnamed exception or a lost record: what the targets forbid."""
        return self.unnamed is not None or bool(self.lost)

    @property
    def caught(self) -> list[FormatError]:
        """Record errors that are an exception no check foresaw, caught at the record."""
        return [e for e in self.parsed.errors if e.__cause__ is not None] if self.parsed else []

    @property
    def worth_a_look(self) -> bool:
        return self.broke_a_rule or bool(self.caught)


def read_like_ingest(data: bytes, name: str = "mutant") -> ParsedFile:
    """What ``ingest`` does with a file before the index: detect, parse, plan the documents.

    Raises:
        FormatError: the file as a whole cannot be read (the only exception allowed).
    """
    pf = parse_bytes(data, name)
    plan_ingest([pf], {})
    for text in _strings(pf):
        text.encode("utf-8")  # printable in the report, storable in the index
    return pf


def _strings(pf: ParsedFile) -> Iterable[str]:
    for record in _records(pf):
        yield from (v for v in vars(record).values() if isinstance(v, str))
        yield from record.authors
    for topic in pf.topics:
        yield topic.topic.title
        yield from topic.topic.paragraphs
    yield from (str(e) for e in pf.errors)


def check(fixture: Fixture, mutant: bytes, span: tuple[int, int] | None) -> Outcome:
    """Read ``mutant`` like ingest; with a single edit ``span``, check the untouched records."""
    outcome = Outcome()
    try:
        outcome.parsed = read_like_ingest(mutant, fixture.name)
    except FormatError as exc:
        outcome.file_error = exc
        str(exc).encode("utf-8")
    except Exception as exc:
        outcome.unnamed = exc
        return outcome
    if span is None:
        return outcome
    a, b = span
    untouched = [key for k, key in fixture.good if not _touches(fixture, k, a, b)]
    if fixture.format == "reprint" and len(RECORD_STARTS["reprint"].findall(mutant)) != len(fixture.spans):
        # a numbered line added or lost: the references after it are numbered anew
        untouched = [key for k, key in fixture.good if fixture.spans[k][1] <= a - 1 and key in untouched]
    found = {_key(r) for r in _records(outcome.parsed)} if outcome.parsed else set()
    outcome.lost = [key for key in untouched if key not in found]
    topics = {t.topic.title for t in outcome.parsed.topics} if outcome.parsed else set()
    if fixture.topic and a >= fixture.spans[0][0] + 8 and fixture.topic not in topics:
        outcome.lost.append(("topic", fixture.topic))  # an edit of the reference list only
    return outcome


def _touches(fixture: Fixture, k: int, a: int, b: int) -> bool:
    """Whether an edit of ``[a, b)`` may change record ``k`` (one byte of margin each side).

    In a topic reprint a line without a number continues the reference before it, so an
    edit that damages reference k's number touches reference k - 1 too; and edits of the
    topic's text or of the first reference's number may change where the list is found,
    so they count as touching every reference.
    """
    start, end = fixture.spans[k]
    if fixture.format == "reprint" and k + 1 < len(fixture.spans):
        end = fixture.spans[k + 1][1]
    if a < end + 1 and b > start - 1:
        return True
    return fixture.format == "reprint" and a < fixture.spans[0][0] + 8


# --------------------------------------------------------------------------- a run


@dataclass
class Stats:
    """Counts for one format."""

    mutations: int = 0
    clean: int = 0
    record_errors: int = 0
    caught: int = 0
    file_errors: int = 0
    unnamed: int = 0
    lost: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.mutations += 1
        if outcome.unnamed is not None:
            self.unnamed += 1
            kind = f"{type(outcome.unnamed).__name__}: {outcome.unnamed}"[:100]
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        elif outcome.file_error is not None:
            self.file_errors += 1
        elif outcome.parsed is not None:
            errors = outcome.parsed.errors
            self.record_errors += len(errors)
            self.caught += len(outcome.caught)
            self.clean += not errors
        self.lost += len(outcome.lost)


def fuzz(
    fixtures: Sequence[Fixture],
    mutations_per_format: int,
    seed: int = 0,
    on_failure: Callable[[Fixture, bytes, Outcome], None] | None = None,
    deadline: float | None = None,
) -> dict[str, Stats]:
    """Mutate each format's fixtures ``mutations_per_format`` times in all; stats per format.

    ``on_failure`` gets each mutant that broke a rule or whose errors include a caught
    exception; ``deadline`` (a :func:`time.perf_counter` value) stops early, with what was
    done.
    """
    logging.disable(logging.CRITICAL)  # libraries' own complaints: the errors say it
    try:
        by_format: dict[str, list[Fixture]] = {}
        for fx in fixtures:
            by_format.setdefault(fx.format, []).append(fx)
        stats: dict[str, Stats] = {}
        for fmt, group in by_format.items():
            st = stats[fmt] = Stats()
            started = time.perf_counter()
            for k, fx in enumerate(group):
                share = mutations_per_format // len(group) + (k < mutations_per_format % len(group))
                rng = random.Random(f"{seed}:{fx.name}")
                for _ in range(share):
                    if deadline is not None and time.perf_counter() > deadline:
                        break
                    mutant, span = mutate(fx.data, rng)
                    outcome = check(fx, mutant, span)
                    st.add(outcome)
                    if outcome.worth_a_look and on_failure is not None:
                        on_failure(fx, mutant, outcome)
            st.seconds = time.perf_counter() - started
        return stats
    finally:
        logging.disable(logging.NOTSET)


def save_failure(folder: Path) -> Callable[[Fixture, bytes, Outcome], None]:
    """A ``on_failure`` that writes each failing mutant to ``folder`` (named by its hash)."""

    def save(fixture: Fixture, mutant: bytes, outcome: Outcome) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(mutant).hexdigest()[:12]
        suffix = Path(fixture.name).suffix
        (folder / f"{Path(fixture.name).stem}-{digest}{suffix}").write_bytes(mutant)

    return save


def table(stats: dict[str, Stats]) -> str:
    """The per-format table the benchmark prints."""
    head = ("format", "mutations", "clean", "record errors", "caught", "file errors", "unnamed", "lost", "mut/s")
    rows = [head]
    for fmt, st in stats.items():
        rate = st.mutations / st.seconds if st.seconds else 0.0
        rows.append(
            (
                fmt,
                str(st.mutations),
                str(st.clean),
                str(st.record_errors),
                str(st.caught),
                str(st.file_errors),
                str(st.unnamed),
                str(st.lost),
                f"{rate:.0f}",
            )
        )
    total = [sum(int(r[i]) for r in rows[1:]) for i in range(1, 8)]
    seconds = sum(st.seconds for st in stats.values())
    rows.append(("total", *map(str, total), f"{total[0] / seconds:.0f}" if seconds else "0"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "| "
        + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        + " |"
        for r in rows
    ]
    lines.insert(
        1, "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutations", type=int, default=10_000, help="mutants per format (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", action="append", dest="formats", help="only this format (repeatable)")
    parser.add_argument(
        "--save", type=Path, default=REPO_ROOT / "artifacts" / "fuzz-crashes", help="failing mutants go here"
    )
    args = parser.parse_args(argv)
    fixtures = load_fixtures(args.formats)
    started = time.perf_counter()
    stats = fuzz(fixtures, args.mutations, args.seed, on_failure=save_failure(args.save))
    print(table(stats))
    print(f"seed {args.seed}, {time.perf_counter() - started:.1f} s")
    for fmt, st in stats.items():
        for kind, count in sorted(st.kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {fmt}: {count} x {kind}")
    failed = sum(st.unnamed + st.lost for st in stats.values())
    caught = sum(st.caught for st in stats.values())
    if failed or caught:
        print(f"{failed} failures, {caught} caught exceptions; the mutants are in {args.save}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
