"""Train the learned selector (:mod:`assistant.answers.selector`) on the bank of precedents.

Every dev question of the broad-question file is asked as ``eval-answers`` asks it: its
history first, its own batch left out of the bank, so that its votes are those a new question
gets. Its candidates, with their features, become examples graded by the question's relevance.

``python -m assistant train-selector`` writes the selector beside the bank
(:func:`assistant.config.selector_beside`), where the answerer finds it. Train it again after
changing the bank or the gatherer's rules: the examples are what they give.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from assistant.answers.precedents import group_of
from assistant.answers.selector import Example, Selector, digest, train_selector


def bank_items(path: Path, split: str = "dev") -> list[dict[str, Any]]:
    """The ``split`` questions of a broad-question file."""
    from assistant.files import read_jsonl

    return [item for item in read_jsonl(path) if item.get("split", "dev") == split]


@contextlib.contextmanager
def collecting(answerer: Any) -> Iterator[list[tuple[str, list[float]]]]:
    """Within the block, the gatherer records its candidates' features, and the selector is
    off: the examples are what the rules and the votes alone give."""
    gatherer = answerer.gatherer
    selector, gatherer.selector = gatherer.selector, None
    gatherer.examples = []
    try:
        yield gatherer.examples
    finally:
        gatherer.examples = None
        gatherer.selector = selector


def ask_item(bot: Any, item: Mapping[str, Any], record: list[Any] | None = None) -> Any:
    """Ask a broad question after its history, a dev question with its batch left out of the
    bank; with ``record``, the features of the question's own candidates are appended to it
    (see :func:`collecting`)."""
    answerer = getattr(bot, "answerer", None)
    bank = getattr(answerer, "precedents", None)
    group = group_of(item) if item.get("split", "dev") == "dev" else None
    with bank.excluding(group) if bank is not None else contextlib.nullcontext():
        history: list[dict[str, str]] = []
        for earlier in item.get("history") or []:
            previous = bot.ask(earlier, history=history, mode=item["mode"])
            history += [{"role": "user", "content": earlier}, {"role": "assistant", "content": previous.answer}]
        if record is None:
            return bot.ask(item["text"], history=history, mode=item["mode"])
        with collecting(answerer) as rows:
            answer = bot.ask(item["text"], history=history, mode=item["mode"])
        record.extend(rows)
        return answer


def collect_examples(bot: Any, items: Sequence[Mapping[str, Any]], progress: bool = False) -> list[Example]:
    """The examples of the dev questions ``items`` (see the module docstring)."""
    ref_of = {d: n for n, d in bot.answerer.doc_of_ref().items()}
    examples: list[Example] = []
    for i, item in enumerate(items):
        grades = {int(n): int(g) for n, g in item["relevance"].items()}
        rows: list[tuple[str, list[float]]] = []
        ask_item(bot, {**item, "split": "dev"}, rows)
        examples.extend(
            Example(group_of(item), i, doc_id, tuple(f), grades.get(ref_of.get(doc_id, -1), 0)) for doc_id, f in rows
        )
        if progress and (i + 1) % 200 == 0:
            print(f"  {i + 1}/{len(items)} questions", file=sys.stderr)
    return examples


def nested_selectors(bot: Any, bank: Path, progress: bool = False) -> dict[str, Selector]:
    """For each batch of the bank, a selector trained without it (what ``eval-answers`` asks
    the batch's questions with)."""
    examples = collect_examples(bot, bank_items(bank), progress)
    return {group: train_selector(examples, exclude={group}) for group in sorted({e.group for e in examples})}


def train_from_bank(bot: Any, bank: Path, progress: bool = False) -> Selector:
    """A selector trained on every dev question of the bank file ``bank``."""
    items = bank_items(bank)
    examples = collect_examples(bot, items, progress)
    return train_selector(examples, meta={"bank": bank.name, "bank_digest": digest(bank), "questions": len(items)})


def add_train_selector_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train-selector", help="train the learned selector of cited studies on the bank of labelled questions"
    )
    p.add_argument("--output", type=Path, help="selector file (default: beside the bank, <bank>.selector.json)")
    p.add_argument("--index", type=Path, help="index folder")
    p.add_argument("--corpus", type=Path, help="corpus folder")


def cmd_train_selector(args: argparse.Namespace) -> int:
    from assistant.bot import Assistant
    from assistant.config import Settings, selector_beside

    # the examples are what the rules and votes give: a selector on file (perhaps for other
    # features) is not loaded
    settings = Settings.from_env(index_dir=args.index, corpus_dir=args.corpus).with_(selector="off")
    bank = settings.precedents_path
    if bank is None:
        print("no bank of precedents (LBP_PRECEDENTS is off, or the corpus is not the embedded one)", file=sys.stderr)
        return 2
    bot = Assistant.load(settings=settings)
    if bot.answerer.precedents is None:
        print(f"the bank {bank} names no study of this index", file=sys.stderr)
        return 2
    started = time.perf_counter()
    selector = train_from_bank(bot, bank, progress=True)
    output = args.output or selector_beside(bank)
    selector.save(output)
    meta = selector.meta
    print(
        f"wrote {output}: {meta['questions']} questions, {meta['examples']} candidates "
        f"({meta['relevant']} relevant, {meta['essential']} essential) in {time.perf_counter() - started:.0f} s"
    )
    return 0
