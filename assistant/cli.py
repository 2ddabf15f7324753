"""Command line: ``python -m assistant <command> ...``.

Each subcommand is a pair: ``_add_<name>(subparsers)`` builds its parser and
``cmd_<name>(args) -> int`` runs it. Commands that live in other modules are listed in
``EXTERNAL_COMMANDS`` and imported only when named, so a search or a question never pays
for the imports of evaluation or the web app.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.arguments import fraction, hits_k, int_in
from assistant.errors import FormatError, IndexProblem
from assistant.limits import check_filters, check_question, check_request

# name -> (module, parser builder, runner, one-line help). Modules must import heavy packages
# lazily. The help is repeated here so that `--help` lists every command without importing
# the modules; tests check that each module registers the same line.
EXTERNAL_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "eval": (
        "assistant.evaluation.evaluate",
        "add_eval_parser",
        "cmd_eval",
        "evaluate the retrievers on a BEIR folder (default: the built-in LBP dev set)",
    ),
    "eval-answers": (
        "assistant.evaluation.answer_eval",
        "add_eval_answers_parser",
        "cmd_eval_answers",
        "answer-level metrics (scope, citations, red flags, synthesis) over the answer dev sets",
    ),
    "train-selector": (
        "assistant.evaluation.selector_training",
        "add_train_selector_parser",
        "cmd_train_selector",
        "train the learned selector of cited studies on the bank of labelled questions",
    ),
    "convert": (
        "assistant.evaluation.pubmedqa",
        "add_convert_parser",
        "cmd_convert",
        "convert an external benchmark (PubMedQA) to a BEIR folder",
    ),
    "feedback": (
        "assistant.web.feedback",
        "add_feedback_parser",
        "cmd_feedback",
        "export the ratings and comments people gave in the web app",
    ),
    "ingest": (
        "assistant.sources.ingest",
        "add_ingest_parser",
        "cmd_ingest",
        "add references (PubMed XML, MEDLINE/.nbib, RIS, BibTeX, BEIR, topic reprints) to the index",
    ),
    "fetch-pubmed": (
        "assistant.sources.pubmed",
        "add_fetch_parser",
        "cmd_fetch_pubmed",
        "fetch PubMed abstracts (NCBI E-utilities) into a PubMed XML file to ingest",
    ),
}


def _settings(args: argparse.Namespace) -> Any:
    from assistant.config import Settings

    return Settings.from_env(
        index_dir=getattr(args, "index", None),
        corpus_dir=getattr(args, "corpus", None),
        query_encoder=getattr(args, "query_encoder", None),
    )


def _add_index_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=Path, help="index folder (default: index/ or $LBP_INDEX)")
    p.add_argument(
        "--corpus", type=Path, help="corpus folder the index is built from (default: corpus/ or $LBP_CORPUS)"
    )


def _add_retriever_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--retriever", choices=("hybrid", "dense", "bm25"), default="hybrid")
    p.add_argument("--fusion", choices=("rrf", "convex"), help="hybrid fusion (default: rrf)")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata filter, repeatable: species=human, study_type=Cochrane review, phase=acute, audience=patient",
    )


# --------------------------------------------------------------------------- build


def _add_build(sub: Any) -> None:
    p = sub.add_parser("build", help="build the index from a corpus folder or a BEIR folder")
    _add_index_arg(p)
    p.add_argument(
        "--faiss",
        choices=("flat", "hnsw", "ivf", "ivfpq"),
        help="FAISS index type (default: the existing index's, else flat, exact; ivfpq: compressed and memory-mapped, for large corpora)",
    )
    p.add_argument(
        "--chunk-tokens",
        type=int_in(16, 512),
        help="passage bound in model tokens (default: the existing index's, else 160; capped at the model limit)",
    )
    p.add_argument("--force", action="store_true", help="rebuild even when the index is up to date")
    ray = p.add_argument_group("cluster builds (docs/scale.md; pip install 'lbp-assistant[cluster]')")
    ray.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local (default) or Ray Data on a cluster"
    )
    ray.add_argument("--address", help="Ray cluster to join, e.g. auto or ray://head:10001 (default: a local cluster)")
    ray.add_argument(
        "--workers", type=int_in(1, 100_000), help="embedding actors (default: one per CPU of the cluster)"
    )
    ray.add_argument(
        "--work-dir",
        help="where the Parquet shards go, seen by every node (default: a temporary folder beside the index)",
    )
    ray.add_argument("--keep-shards", action="store_true", help="keep the Parquet shards after assembly")


def cmd_build(args: argparse.Namespace) -> int:
    from assistant.documents.corpus import documents_hash, load_corpus
    from assistant.search.build import build_index, ensure_index
    from assistant.search.index import Index

    settings = _settings(args).with_(
        **{k: v for k, v in {"faiss_index": args.faiss, "chunk_tokens": args.chunk_tokens}.items() if v is not None}
    )
    if args.engine == "ray":
        from assistant.cluster.ray_build import build_with_ray

        index = build_with_ray(
            settings,
            address=args.address,
            workers=args.workers,
            work_dir=args.work_dir,
            keep_shards=args.keep_shards,
            force=args.force,
        )
    else:
        given = [f"--{k.replace('_', '-')}" for k in ("address", "workers", "work_dir") if getattr(args, k)]
        if given or args.keep_shards:
            raise ValueError(
                f"{', '.join([*given, *(['--keep-shards'] if args.keep_shards else [])])} need --engine ray"
            )
        docs = load_corpus(settings.corpus_dir)
        if args.force:
            extra = []
            if (settings.index_dir / "manifest.json").exists():
                try:
                    previous = Index.load(settings.index_dir)
                    extra = previous.added_documents()
                    settings = settings.following(previous.manifest)
                except IndexProblem:
                    extra = []
            index = build_index(docs, settings, documents_hash(docs), str(settings.corpus_dir), extra_documents=extra)
        else:
            index = ensure_index(settings, docs)
    m = index.manifest
    print(f"{index.path}: {m['counts']['documents']} documents, {m['counts']['passages']} passages, "
          f"dimension {m['dimension']}, FAISS {m['faiss']['type']}")  # fmt: skip
    return 0


# --------------------------------------------------------------------------- search


def _add_search(sub: Any) -> None:
    p = sub.add_parser("search", help="search passages")
    p.add_argument("text", help="the query")
    p.add_argument("--k", type=hits_k, default=10, help="hits to return, 1-1000 (default: %(default)s)")
    _add_retriever_args(p)
    p.add_argument("--mmr", type=fraction, metavar="LAMBDA", help="diversify with MMR, 0-1 (e.g. 0.7)")
    p.add_argument("--documents", action="store_true", help="aggregate to documents (best passage)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_index_arg(p)


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.bot import Assistant
    from assistant.search.retrieval import parse_filters

    filters = parse_filters(args.filter)
    check_question(args.text, "the query")
    check_filters(filters)
    bot = Assistant.load(settings=_settings(args), fusion=args.fusion)
    if args.documents:
        docs = bot.search_documents(args.text, k=args.k, retriever=args.retriever, filters=filters)
        if args.json:
            print(json.dumps([{"rank": i, "doc_id": d, "score": s} for i, (d, s) in enumerate(docs, 1)], indent=2))
        else:
            for i, (d, s) in enumerate(docs, 1):
                print(f"{i:>3}  {s:8.4f}  {d}")
        return 0
    hits = bot.search(args.text, k=args.k, retriever=args.retriever, filters=filters, mmr_lambda=args.mmr)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("No passages matched." + (" Check the filters." if filters else ""))
    for h in hits:
        m = h.metadata
        label = ", ".join(str(x) for x in (m.get("study_type"), m.get("species"), m.get("year")) if x)
        print(f"{h.rank:>3}. [{h.passage_id}] score {h.score:.4f}  ({label})")
        print(f"     {m.get('title', '')}")
        print(f"     {h.text[:300]}{'...' if len(h.text) > 300 else ''}\n")
    return 0


# --------------------------------------------------------------------------- retrieve


def _add_retrieve(sub: Any) -> None:
    p = sub.add_parser("retrieve", help="BEIR queries in, TREC run out (one line per document)")
    p.add_argument("--queries", type=Path, required=True, help="BEIR queries.jsonl ({_id, text} per line)")
    p.add_argument("--output", type=Path, required=True, help="TREC run file to write")
    p.add_argument("--k", type=hits_k, default=100, help="documents per query, 1-1000 (default: %(default)s)")
    p.add_argument("--tag", help="run tag (default: the retriever name)")
    _add_retriever_args(p)
    _add_index_arg(p)


def cmd_retrieve(args: argparse.Namespace) -> int:
    from assistant.bot import Assistant
    from assistant.evaluation.beir import read_queries, write_trec_run
    from assistant.search.retrieval import parse_filters, run_queries

    queries = read_queries(args.queries)
    bot = Assistant.load(settings=_settings(args), fusion=args.fusion)
    run = run_queries(
        bot.retriever, queries, k=args.k, method=args.retriever, filters=parse_filters(args.filter), progress=True
    )
    write_trec_run(args.output, run, tag=args.tag or args.retriever)
    print(f"wrote {sum(len(v) for v in run.values())} lines for {len(run)} queries to {args.output}")
    return 0


# --------------------------------------------------------------------------- export


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export the corpus documents (BEIR corpus.jsonl)")
    p.add_argument("--format", choices=("beir",), default="beir")
    p.add_argument("--output", type=Path, required=True, help="output folder")
    _add_index_arg(p)


def cmd_export(args: argparse.Namespace) -> int:
    from assistant.documents.corpus import export_beir, load_corpus

    settings = _settings(args)
    docs = load_corpus(settings.corpus_dir)
    extra: list[Any] = []
    if (settings.index_dir / "manifest.json").exists():
        from assistant.search.index import Index

        try:
            extra = Index.load(settings.index_dir).added_documents()
        except IndexProblem:
            extra = []
    target = export_beir([*docs, *extra], args.output)
    print(f"wrote {len(docs) + len(extra)} documents to {target}")
    return 0


# --------------------------------------------------------------------------- ask


def _add_ask(sub: Any) -> None:
    p = sub.add_parser("ask", help="a cited answer to a question")
    p.add_argument("question", help="the question (quote it)")
    p.add_argument("--mode", default="clinician", help="clinician (default) or patient")
    p.add_argument("--history", type=Path, help='JSON file: [{"role": "user"|"assistant", "content": "..."}, ...]')
    p.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="metadata filter, repeatable (see search)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_index_arg(p)


def _read_history(path: Path | None) -> list[Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc
    if not isinstance(data, list):
        raise FormatError(path, 1, "history must be a JSON list of {role, content} messages")
    return data


def cmd_ask(args: argparse.Namespace) -> int:
    from assistant.bot import Assistant
    from assistant.search.retrieval import parse_filters

    history = _read_history(args.history)
    filters = parse_filters(args.filter)
    if args.mode not in ("clinician", "patient"):
        raise ValueError(f"unsupported mode {args.mode!r}: use clinician or patient")
    check_request(args.question, history, filters)  # past a bound: exit 2, before the index loads
    bot = Assistant.load(settings=_settings(args))
    answer = bot.ask(args.question, history=history, mode=args.mode, filters=filters)
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        for notice in answer.notices:
            print(f"Note: {notice}", file=sys.stderr)
        print(answer.to_text())
    return 0


# --------------------------------------------------------------------------- main

CORE: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "build": (_add_build, cmd_build),
    "search": (_add_search, cmd_search),
    "retrieve": (_add_retrieve, cmd_retrieve),
    "export": (_add_export, cmd_export),
    "ask": (_add_ask, cmd_ask),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, external commands other than it are not imported."""
    from assistant import __version__

    parser = argparse.ArgumentParser(
        prog="python -m assistant",
        description="Offline cited answers from the evidence on exercise therapy for low back pain.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in CORE.values():
        add(sub)
    for name, (module, add_name, _, one_line) in EXTERNAL_COMMANDS.items():
        if only is None or only == name:
            getattr(importlib.import_module(module), add_name)(sub)
        else:
            sub.add_parser(name, help=one_line, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=named if named in EXTERNAL_COMMANDS else "")
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.command in CORE:
        run = CORE[args.command][1]
    else:
        module, _, run_name, _ = EXTERNAL_COMMANDS[args.command]
        run = getattr(importlib.import_module(module), run_name)
    try:
        return int(run(args) or 0)
    except (FormatError, FileNotFoundError, ValueError, IndexProblem) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
