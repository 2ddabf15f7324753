"""Format detection and the parsers of assistant.sources.formats, on hand-written fictional fixtures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from assistant.errors import FormatError
from assistant.sources.formats import (
    Record,
    detect_format,
    format_citation,
    parse_bytes,
    parse_file,
    parse_text,
    record_to_document,
    species_from_mesh,
    study_type_from,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ingest"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything opens a socket or Bio.Entrez tries to download a DTD."""
    import Bio.Entrez.Parser

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(Bio.Entrez.Parser, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("pubmed_efetch.xml", "pubmed-xml"),
        ("pubmed_bad.xml", "pubmed-xml"),
        ("medline.nbib", "medline"),
        ("references.ris", "ris"),
        ("library.bib", "bibtex"),
        ("corpus.jsonl", "beir"),
        ("topic-reprint.txt", "reprint"),
    ],
)
def test_detect_format_from_content(name: str, fmt: str) -> None:
    assert detect_format((FIXTURES / name).read_text(encoding="utf-8"), name) == fmt


def test_detect_format_ignores_the_file_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "export.txt"
    misnamed.write_text((FIXTURES / "references.ris").read_text(encoding="utf-8"), encoding="utf-8")
    assert parse_file(misnamed).format == "ris"


def test_the_real_topic_reprint_is_detected() -> None:
    corpus = Path(__file__).parents[2] / "corpus" / "topic-exercise-based-therapy-for-low-back-pain.txt"
    assert detect_format(corpus.read_text(encoding="utf-8")) == "reprint"


def test_unknown_format_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("just some notes\nabout back pain\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"notes\.txt.*cannot tell the format"):
        parse_file(f)


def test_non_pubmed_xml_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "other.xml"
    f.write_text("<?xml version='1.0'?><eSearchResult><Count>0</Count></eSearchResult>", encoding="utf-8")
    with pytest.raises(FormatError, match=r"other\.xml:1: .*PubmedArticleSet"):
        parse_file(f)


# --------------------------------------------------------------------------- PubMed XML


def test_pubmed_xml_fields(no_network: None) -> None:
    pf = parse_file(FIXTURES / "pubmed_efetch.xml")
    assert pf.errors == ()
    by_pmid = {r.pmid: r for r in pf.records}
    assert list(by_pmid) == ["99000001", "99000002", "99000003", "99000004", "99000005"]
    rct = by_pmid["99000001"]
    assert rct.title == "Fictional trial of pole walking for chronic low back pain: a randomized controlled trial"
    assert rct.abstract.splitlines()[0] == (
        "BACKGROUND: This is an invented test record. Pole walking is a hypothetical intervention in this fictional trial."
    )
    assert [x.split(":")[0] for x in rct.abstract.splitlines()] == ["BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert rct.authors == ("Testperson AB", "Placeholder C", "Fictional Walking Study Group")
    assert (rct.journal, rct.year, rct.volume, rct.issue, rct.pages) == ("J Fict Spine Res", 2021, "12", "3", "101-110")
    assert rct.doi == "10.99999/fict.walk.2021.001"
    assert rct.where == "line 4, record 1 (PMID 99000001)"
    # MedlineDate "2020 Jan-Feb" and a DOI only in PubmedData/ArticleIdList
    review = by_pmid["99000002"]
    assert (review.year, review.doi) == (2020, "10.99999/fict.aqua.2020")
    assert by_pmid["99000004"].abstract == ""
    book = by_pmid["99000005"]
    assert (book.title, book.journal, book.year, book.authors) == (
        "Fictional handbook chapter on back exercise",
        "FictPearls",
        2022,
        ("Writer G",),
    )


def test_pubmed_xml_never_downloads_a_dtd(no_network: None) -> None:
    text = (FIXTURES / "pubmed_efetch.xml").read_text(encoding="utf-8")
    newer = text.replace("pubmed_250101.dtd", "pubmed_990101.dtd")  # a DTD Biopython does not ship
    without = "\n".join(line for line in text.splitlines() if not line.startswith("<!DOCTYPE"))
    for variant in (newer, without):
        pf = parse_text(variant, "pubmed-xml", "variant.xml")
        assert (len(pf.records), pf.errors) == (5, ())


def test_bad_pubmed_records_are_reported_and_good_ones_kept(no_network: None) -> None:
    pf = parse_file(FIXTURES / "pubmed_bad.xml")
    assert [r.pmid for r in pf.records] == ["99000011"]
    messages = [str(e) for e in pf.errors]
    path = str(FIXTURES / "pubmed_bad.xml")
    assert messages == [
        f"{path}:20: record 2 (PMID 99000012): bad PubMed XML: element <MadeUpElement> is not defined by the PubMed DTD",
        f"{path}:33: record 3 (PMID 99000013): the article is not closed (truncated file?)",
    ]


# --------------------------------------------------------------------------- MEDLINE, RIS, BibTeX, BEIR


def test_medline_fields_and_bad_record() -> None:
    pf = parse_file(FIXTURES / "medline.nbib")
    first, cohort, woolf = pf.records
    # a title continued on a 6-space line is joined
    assert first.title == "Fictional trial of pole walking for chronic low back pain: a randomized controlled trial"
    assert first.abstract == ""
    assert first.authors == ("Testperson AB", "Placeholder C", "Fictional Walking Study Group")
    assert first.doi == "10.99999/fict.walk.2021.001"
    assert first.mesh == ("Humans", "Low Back Pain")  # '*' and '/therapy' removed
    assert (cohort.pmid, cohort.year, cohort.doi, cohort.pages) == (
        "99000021",
        2018,
        "10.99999/FICT.GARDEN.2018",
        "33-41",
    )
    assert cohort.abstract.startswith(
        "OBJECTIVE: To describe an invented cohort. METHODS: Two hundred fictional retirees"
    )
    assert woolf.pmid == "21041955"
    (error,) = pf.errors
    assert str(error) == (
        f"{FIXTURES / 'medline.nbib'}:67: record 4 (PMID 99000022): not a MEDLINE line "
        "('TAG - value' or a 6-space continuation): 'this line has no MEDLINE tag'"
    )


def test_ris_fields_and_missing_end_tag() -> None:
    pf = parse_file(FIXTURES / "references.ris")
    aquatic, taichi, editorial = pf.records
    assert (aquatic.doi, aquatic.year, aquatic.pages, aquatic.pmid) == ("10.99999/FICT.AQUA.2020", 2020, "1-20", None)
    assert taichi.pmid == "99000031"  # from "N1  - PMID: 99000031"
    assert taichi.authors == ("Lee AB", "Sample I")
    assert "Orion Stiffness Score" in taichi.abstract
    assert (editorial.title, editorial.journal, editorial.year) == (
        "Fictional editorial on core stability",
        "Fictional Editorials",
        2017,
    )
    (error,) = pf.errors
    assert str(error).endswith(
        "references.ris:28: record 3 ('Fictional record whose end tag is missing'): no 'ER  -' line ends this record"
    )


def test_comparison_signs_in_text_are_not_taken_for_markup() -> None:
    ris = "TY  - JOUR\nTI  - Fictional <i>in vivo</i> note\nAB  - Pain fell (p <0.05, n> 30).\nER  - \n"
    (record,) = parse_text(ris, "ris", "inline.ris").records
    assert record.title == "Fictional in vivo note"
    assert record.abstract == "Pain fell (p <0.05, n> 30)."


def test_bibtex_fields_and_bad_entries() -> None:
    pf = parse_file(FIXTURES / "library.bib")
    editorial, pilates = pf.records
    assert editorial.title == "Fictional Editorial on Core-Stability"
    assert pilates.title == "Fictional Müller trial of Pilates versus walking"  # LaTeX decoded
    assert pilates.authors == ("Müller HP", "van der Berg P", "Fictional Pilates Consortium")
    assert (pilates.pmid, pilates.doi, pilates.pages) == ("99000041", "10.99999/fict.pilates.2023", "50-58")
    assert pilates.where == "line 10, entry 'mueller2023'"
    errors = [str(e) for e in pf.errors]
    assert len(errors) == 2
    assert errors[0].startswith(f"{FIXTURES / 'library.bib'}:23: entry 'broken2020': bad BibTeX:")
    assert errors[1] == f"{FIXTURES / 'library.bib'}:28: entry 'nopaper': no title and no abstract"


def test_beir_records_and_bad_lines() -> None:
    pf = parse_file(FIXTURES / "corpus.jsonl")
    swim, beliefs = pf.records
    assert (swim.doi, swim.year, swim.authors, swim.journal) == (
        "10.99999/fict.swim.2016",
        2016,
        ("Swimmer S",),
        "Fict Aquat Med",
    )
    assert beliefs.abstract == ""  # empty text: kept as a citation
    assert [str(e).split(": ", 1)[0].rsplit(":", 1)[1] for e in pf.errors] == ["3", "4"]
    assert "invalid JSON" in str(pf.errors[0])
    assert "record 4 (_id 'fict-4'): 'title' and 'text' must be strings" in str(pf.errors[1])


def test_topic_reprint_and_its_references() -> None:
    pf = parse_file(FIXTURES / "topic-reprint.txt")
    (item,) = pf.topics
    assert item.topic.title == "Walking programs for low back pain (fictional test topic)"
    assert [r.title for r in item.references] == [
        "Exercise therapy for treatment of non-specific low back pain",
        "Fictional trial of pole walking for chronic low back pain: a randomized controlled trial",
        "Fictional report of a hospital walking club",
    ]
    assert (
        item.references[2].citation
        == "Clubber Q. Fictional report of a hospital walking club. Fict Hosp Rep 2020; 2:3."
    )
    assert item.references[0].source.endswith("topic-reprint.txt (reprint)")


def test_broken_reprint_is_one_error(tmp_path: Path) -> None:
    f = tmp_path / "broken.txt"
    f.write_text("Official reprint from UpToDate\n\nA title\n\nBody [1].\n  2. Out of order. J 2001; 1:1.\n")
    pf = parse_file(f)
    assert pf.topics == ()
    assert len(pf.errors) == 1 and str(pf.errors[0]).startswith(str(f))


# --------------------------------------------------------------------------- records -> documents


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["Journal Article", "Randomized Controlled Trial"], "randomized controlled trial"),
        (["Meta-Analysis", "Review", "Systematic Review"], "systematic review and meta-analysis"),
        (["Meta-Analysis"], "meta-analysis"),
        (["Review", "Systematic Review"], "systematic review"),
        (["Review"], "review"),
        (["Comment"], "other"),
        ([], None),
    ],
)
def test_study_type_from_publication_types(types: list[str], expected: str | None) -> None:
    assert study_type_from(types) == expected


def test_species_from_mesh() -> None:
    assert species_from_mesh(["Animals", "Humans", "Rats"]) == "human"
    assert species_from_mesh(["Animals", "Rats"]) == "animal"
    assert species_from_mesh(["*Low Back Pain/therapy"]) is None


def test_format_citation_lists_four_authors_or_three_and_et_al() -> None:
    base = Record(title="A fictional title", journal="J Fict", year=2020, volume="3", issue="2", pages="1-9")
    four = Record(**{**base.__dict__, "authors": ("A B", "C D", "E F", "G H")})
    five = Record(**{**base.__dict__, "authors": ("A B", "C D", "E F", "G H", "I J")})
    assert format_citation(four) == "A B, C D, E F, G H. A fictional title. J Fict 2020; 3(2):1-9."
    assert format_citation(five) == "A B, C D, E F, et al. A fictional title. J Fict 2020; 3(2):1-9."
    assert format_citation(Record(title="Why?")) == "Why?"


def test_record_to_document_follows_the_contract() -> None:
    rct = parse_file(FIXTURES / "pubmed_efetch.xml").records[0]
    doc = record_to_document(rct, 52)
    assert doc.doc_id == "ref-52"
    m = doc.metadata
    assert {k: m[k] for k in ("n", "refs", "pmid", "doi", "url", "study_type", "species", "lbp_phase", "year")} == {
        "n": 52,
        "refs": [52],
        "pmid": "99000001",
        "doi": "10.99999/fict.walk.2021.001",
        "url": "https://pubmed.ncbi.nlm.nih.gov/99000001/",
        "study_type": "randomized controlled trial",
        "species": "human",
        "lbp_phase": None,
        "year": 2021,
    }
    assert m["authors"] == ["Testperson AB", "Placeholder C", "Fictional Walking Study Group"]
    assert m["citation"] == (
        "Testperson AB, Placeholder C, Fictional Walking Study Group. Fictional trial of pole walking for chronic "
        "low back pain: a randomized controlled trial. J Fict Spine Res 2021; 12(3):101-110."
    )
    assert m["source"] == f"{FIXTURES / 'pubmed_efetch.xml'} (pubmed-xml)"
    assert m["has_abstract"] is True
    (section,) = doc.sections
    assert (section.name, section.audience) == ("abstract", "clinician")
    assert section.text.startswith(rct.title + "\n\nBACKGROUND: ")


def test_a_record_without_abstract_is_a_citation_document() -> None:
    swim_and_beliefs = parse_file(FIXTURES / "corpus.jsonl").records
    swim, beliefs = (record_to_document(r, n) for r, n in zip(swim_and_beliefs, (60, 61), strict=True))
    assert swim.metadata["url"] == "https://doi.org/10.99999/fict.swim.2016"  # no PMID: the DOI page
    (section,) = beliefs.sections
    assert section.name == "citation"
    assert section.text == beliefs.metadata["citation"] == "Fictional qualitative study of beliefs about bending."
    assert beliefs.metadata["has_abstract"] is False
    assert beliefs.metadata["url"] is None


# --------------------------------------------------------------------------- one bad record, not a bad file


def test_detection_counts_records_so_one_damaged_or_stray_record_cannot_flip_it() -> None:
    medline = (FIXTURES / "medline.nbib").read_text(encoding="utf-8")
    assert detect_format("x" + medline) == "medline"  # the first line (record 1) damaged
    ris = (FIXTURES / "references.ris").read_text(encoding="utf-8")
    assert detect_format(ris.replace("PY  - 2022\n", "@article{stray,\nPMID- 1\n")) == "ris"
    xml = (FIXTURES / "pubmed_efetch.xml").read_text(encoding="utf-8")
    assert detect_format("TY  - " + xml) == "pubmed-xml"  # junk before the XML declaration


def test_bytes_that_are_not_utf8_cost_their_record_only() -> None:
    data = (FIXTURES / "references.ris").read_bytes().replace(b"Lee, Ana B.", b"Lee, Ana \xe9.", 1)
    pf = parse_bytes(data, "latin1.ris")
    assert [r.title[:30] for r in pf.records] == ["Fictional systematic review an", "Fictional editorial on core st"]
    assert str(pf.errors[0]) == (
        "latin1.ris:12: record 2 ('Fictional pilot study of tai chi for office workers with bac'): "
        "the text is not valid UTF-8 (save the file as UTF-8)"
    )


def test_a_broken_pubmed_prolog_does_not_cost_the_articles(no_network: None) -> None:
    text = (FIXTURES / "pubmed_efetch.xml").read_text(encoding="utf-8")
    broken = text.replace('<?xml version="1.0" ?>', "<?xml version=", 1).replace(
        "pubmed_250101.dtd", 'pubmed_250101.dtd" [<!ENTITY', 1
    )
    pf = parse_text(broken, "pubmed-xml", "prolog.xml")
    assert (len(pf.records), pf.errors) == (5, ())


def test_a_malformed_pubmed_article_is_named_with_its_line(no_network: None) -> None:
    text = (FIXTURES / "pubmed_efetch.xml").read_text(encoding="utf-8")
    pf = parse_text(text.replace("<Volume>7</Volume>", "<Volume>7</Vol>", 1), "pubmed-xml", "m.xml")
    assert [r.pmid for r in pf.records] == ["99000001", "99000003", "99000004", "99000005"]
    (error,) = pf.errors
    assert str(error) == "m.xml:61: record 2 (PMID 99000002): bad PubMed XML: mismatched tag at line 68"


def test_medline_a_blank_line_inside_a_record() -> None:
    text = (FIXTURES / "medline.nbib").read_text(encoding="utf-8")
    broken = text.replace("PT  - Observational Study\n", "PT  - Observational Study\n\n      stray continuation\n")
    pf = parse_text(broken, "medline", "blank.nbib")
    assert [r.pmid for r in pf.records] == ["99000001", "99000021", "21041955"]
    assert "blank.nbib:46: record 3: a continuation line with no tag before it" in str(pf.errors[0])


def test_bibtex_reports_bad_entries_without_logging_them(capfd: pytest.CaptureFixture[str]) -> None:
    parse_file(FIXTURES / "library.bib")
    assert capfd.readouterr().err == ""


def test_beir_metadata_of_the_wrong_type_is_a_record_error() -> None:
    lines = [
        '{"_id": "a", "title": "Fictional A", "text": "", "metadata": {"publication_types": "Review"}}',
        '{"_id": "b", "title": "Fictional B", "text": "", "metadata": {"authors": [1, 2]}}',
        '{"_id": "c", "title": "Fictional C", "text": "", "metadata": {"year": ' + "9" * 5000 + "}}",
        "[" * 100_000,
    ]
    pf = parse_text("\n".join(lines), "beir", "meta.jsonl")
    assert [(r.title, r.publication_types) for r in pf.records] == [("Fictional A", ("Review",))]
    messages = [str(e) for e in pf.errors]
    assert messages[0] == "meta.jsonl:2: record 2 (_id 'b'): 'metadata.authors' must be a string or a list of strings"
    assert messages[1].startswith("meta.jsonl:3: record 3: invalid JSON: Exceeds the limit (4300 digits)")
    assert messages[2] == "meta.jsonl:4: record 4: invalid JSON: nested too deeply"
    assert not any(e.__cause__ for e in pf.errors)  # foreseen: no library exception caught


def test_reprint_with_a_damaged_reference_keeps_the_topic_and_the_others() -> None:
    text = (FIXTURES / "topic-reprint.txt").read_text(encoding="utf-8")
    pf = parse_text(text.replace("  2. Testperson", "  9. Testperson"), "reprint", "r.txt")
    (item,) = pf.topics
    assert item.numbers == (1, 3)
    assert [r.title for r in item.references] == [
        "Exercise therapy for treatment of non-specific low back pain",
        "Fictional report of a hospital walking club",
    ]
    assert [str(e) for e in pf.errors] == [
        "r.txt:24: reference 9 is out of sequence (expected 2): this reference is left out",
        "r.txt:11: citation [2] has no entry in the reference list (1-3)",
        "r.txt:13: citation [2] has no entry in the reference list (1-3)",
    ]
    # reference 1 damaged: the list is still found, from 2
    pf = parse_text(text.replace("  1. Hayden", "  l. Hayden"), "reprint", "r.txt")
    assert [n for n, _ in pf.topics[0].numbered()] == [2, 3]
    # no title or body: the references are still records
    refs_only = text[text.index("  1. Hayden") :]
    pf = parse_text("UpToDate\n" + refs_only, "reprint", "r.txt")
    assert (len(pf.records), pf.topics) == (3, ())
    assert "no body text found" in str(pf.errors[-1])
