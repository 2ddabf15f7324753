"""The ``reprint`` reader: an UpToDate-style topic reprint, text followed by a numbered reference list.

Read by :func:`assistant.documents.reprint.parse_topic_reprint`, leniently: the topic becomes
a :class:`~assistant.sources.records.TopicRecord` and each reference of its list a
citation-only :class:`~assistant.sources.records.Record`; a damaged reference costs that
reference only.
"""

from __future__ import annotations

from assistant.documents.reprint import ReferenceEntry, Topic
from assistant.errors import FormatError
from assistant.sources import records as rec
from assistant.sources.records import Record, TopicRecord


def _reference_record(c: ReferenceEntry) -> Record:
    return Record(
        title=rec.clean_title(c.title or c.text),
        authors=tuple(a.strip() for a in c.authors.split(",") if a.strip() not in ("", "et al")),
        journal=c.journal,
        year=c.year,
        citation=c.text,
        where=f"reference {c.n}",
    )


def _parse_reprint(text: str, path: str) -> tuple[list[TopicRecord | Record], list[FormatError]]:
    """A topic reprint, read by :func:`assistant.documents.reprint.parse_topic_reprint` (leniently).

    The topic and each reference of its list are records: a damaged reference is left out
    (and reported) and the others kept; a topic that cannot be read (no title, no body,
    text that is not UTF-8) is reported and its references are still read, as plain
    records. A reprint without a numbered reference list is one error.
    """
    from assistant.documents.reprint import parse_reference_list, parse_topic_reprint

    problems: list[FormatError] = []
    topic: Topic | None = None
    try:
        topic = parse_topic_reprint(text, source=path, problems=problems)
        entries = list(topic.references)
    except FormatError as exc:
        problems.append(exc)
        try:
            entries = parse_reference_list(text, path)[0]
        except FormatError:
            entries = []
    except Exception as exc:
        return [], [*problems, rec.read_failure(path, None, "topic", exc, "the topic reprint reader")]
    errors = list(problems)
    references: list[Record] = []
    numbers: list[int] = []
    for c in entries:
        record = _reference_record(c)
        if rec.text_not_utf8(c.text) or rec.record_not_utf8(record):
            errors.append(rec.record_error(path, None, f"reference {c.n}", "the text is not valid UTF-8"))
            continue
        references.append(record)
        numbers.append(c.n)
    if topic is None:
        return list(references), errors
    editors = [x for role, names in topic.editors.items() for x in (role, *names)]
    texts = [topic.title, *topic.authors, *editors, *topic.paragraphs, *topic.cross_references]
    if rec.text_not_utf8(*texts):
        errors.append(rec.record_error(path, None, "the topic", "its text is not valid UTF-8 (save the file as UTF-8)"))
        return list(references), errors
    return [TopicRecord(topic, tuple(references), tuple(numbers))], errors
