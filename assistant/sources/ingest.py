"""Add people's own literature to an existing index, without rebuilding it.

``python -m assistant ingest FILE... [--index DIR]`` reads each file (format detected from
its content, see :mod:`assistant.sources.formats`), merges duplicates, numbers the new references
after the highest number already indexed, and hands the documents to
:meth:`assistant.search.index.Index.add_documents`, which embeds only the new passages and
records the addition in the manifest.

Deciding what to add (duplicates, numbering, the documents) is :mod:`assistant.sources.ingest_plan`;
this module reads the files, runs the plan against the index, reports what it did and is
the ``ingest`` command. The planning names (:func:`plan_ingest`, :func:`same_work`, ...) are
importable from here too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import FormatError, IndexProblem
from assistant.sources.formats import ParsedFile, parse_file
from assistant.sources.ingest_plan import (
    IngestPlan,
    Merge,
    normalize_doi,
    normalize_title,
    plan_ingest,
    renumber_citations,
    same_work,
)

__all__ = [
    "IngestPlan",
    "IngestReport",
    "Merge",
    "add_ingest_parser",
    "cmd_ingest",
    "ingest_files",
    "normalize_doi",
    "normalize_title",
    "plan_ingest",
    "renumber_citations",
    "same_work",
]

# --------------------------------------------------------------------------- running it


@dataclass
class IngestReport:
    """What an ingest did (or, with ``dry_run``, would do)."""

    files: list[tuple[str, str, int]] = field(default_factory=list)  # (path, format, good records)
    added: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    errors: list[FormatError] = field(default_factory=list)
    passages: int = 0
    dry_run: bool = False
    titles: dict[str, str] = field(default_factory=dict)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ingest_files(
    paths: Iterable[str | Path], settings: Settings, dry_run: bool = False, log: Any = _log
) -> IngestReport:
    """Parse ``paths``, merge duplicates and add the new documents to the index.

    A file that cannot be read, or a record that cannot be parsed, is reported in
    ``errors``; the other records are still added. The index is written atomically per
    file, so nothing already indexed is lost if a later step fails.

    Raises:
        IndexProblem: no usable index at ``settings.index_dir``, or one built with another
            embedding model than ``settings.model``.
    """
    from assistant.search.index import Index

    report = IngestReport(dry_run=dry_run)
    parsed: list[ParsedFile] = []
    for path in paths:
        try:
            pf = parse_file(path)
        except FormatError as exc:
            report.errors.append(exc)
            continue
        except Exception as exc:  # a reader bug must cost this file, not the others (or a traceback)
            report.errors.append(FormatError(path, None, f"cannot read the file ({type(exc).__name__}: {exc})"))
            continue
        parsed.append(pf)
        report.errors.extend(pf.errors)
        report.files.append((pf.path, pf.format, len(pf.records) + sum(len(t.references) for t in pf.topics)))
    index = Index.load(settings.index_dir)
    if index.manifest.get("model") != settings.model:
        raise IndexProblem(
            f"the index at {settings.index_dir} was built with model {index.manifest.get('model')!r}, "
            f"not {settings.model!r}: ingest with the same model (LBP_MODEL) or rebuild the index"
        )
    existing = index.documents_metadata()
    plan = plan_ingest(parsed, existing)
    report.merges = plan.merges
    report.titles = {d.doc_id: d.title for d in plan.documents}
    for source, documents in plan.by_source():
        if dry_run:
            report.added += [d.doc_id for d in documents if d.doc_id not in existing]
            report.extended += [d.doc_id for d in documents if d.doc_id in existing]
            continue
        added = index.add_documents(documents, source, settings, log=log)
        report.added += added.added
        report.extended += added.extended
        report.passages += added.passages
    return report


def format_report(report: IngestReport) -> str:
    """The report as the command prints it."""
    titles = report.titles
    verb = "would add" if report.dry_run else "added"
    lines = [f"{path}: {fmt}, {count} records read" for path, fmt, count in report.files]
    lines += [f"{verb} {d}: {titles.get(d, '')}".rstrip(": ") for d in report.added]
    lines += [f"{verb} an abstract to {d}: {titles.get(d, '')}".rstrip(": ") for d in report.extended]
    if report.merges:
        lines.append(f"duplicates merged: {len(report.merges)}")
        lines += [f"  {m}" for m in report.merges]
    if report.errors:
        lines.append(f"records skipped: {len(report.errors)}")
        lines += [f"  {e}" for e in report.errors]
    if not report.dry_run:
        lines.append(
            f"{len(report.added)} documents added, {len(report.extended)} extended, {report.passages} new passages."
        )
    return "\n".join(lines)


def add_ingest_parser(sub: Any) -> None:
    """Register ``ingest`` on an argparse subparsers object."""
    p = sub.add_parser(
        "ingest",
        help="add references (PubMed XML, MEDLINE/.nbib, RIS, BibTeX, BEIR, topic reprints) to the index",
        description="Add references to an existing index without rebuilding it. The format of each file "
        "is detected from its content. Duplicates (same PMID, else DOI, else title) are merged; new "
        "references are numbered after the highest indexed one. Bad records are reported and skipped.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to ingest")
    p.add_argument("--index", type=Path, help="index folder (default: index/ or $LBP_INDEX)")
    p.add_argument("--dry-run", action="store_true", help="report what would be added; change nothing")


def _print(text: str, file: Any = None) -> None:
    """Print ``text`` even where it cannot be encoded (undecodable bytes, a narrow console)."""
    stream = file or sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Run ``ingest``: 0 when every record was added, 1 when some were skipped (and reported),
    2 when nothing could be read or there is no usable index. Never a traceback.
    """
    settings = Settings.from_env(index_dir=args.index)
    try:
        report = ingest_files(args.files, settings, dry_run=args.dry_run)
    except (FormatError, IndexProblem, OSError) as exc:
        _print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # each file is written atomically: what was added stays
        _print(f"error: ingest stopped ({type(exc).__name__}: {exc}); the index keeps what was added", file=sys.stderr)
        return 2
    _print(format_report(report))
    records_read = sum(count for _, _, count in report.files)
    if report.errors and not records_read:
        return 2
    return 1 if report.errors else 0
