"""Render an evaluation report: Markdown tables (mean metrics per retriever, per-group
means, paired tests) and a PNG bar chart."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assistant.evaluation.metrics import BREAKDOWN_FIELD

__all__ = [
    "plot_report",
    "report_markdown",
]

METRIC_LABELS = {"ndcg": "nDCG", "recall": "R", "mrr": "MRR", "map": "MAP"}


def metric_label(name: str) -> str:
    """``"ndcg@10"`` -> ``"nDCG@10"``."""
    base, _, cut = name.partition("@")
    return f"{METRIC_LABELS.get(base, base)}@{cut}" if cut else METRIC_LABELS.get(base, base)


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _p_cell(row: Mapping[str, Any]) -> str:
    diff = row["mean_a"] - row["mean_b"]
    arrow = "↑" if diff > 0 else "↓" if diff < 0 else "="
    if row["p_value"] is None:
        return f"n/a {arrow}"
    return f"{row['p_value']:.3g}{'*' if row['significant'] else ''} {arrow}"


def report_markdown(report: Mapping[str, Any]) -> str:
    """Markdown tables: mean metrics per retriever, per-group means, paired tests."""
    metrics = list(report["metrics"])
    labels = [metric_label(m) for m in metrics]
    ds = report.get("dataset", {})
    title = f"{ds.get('name', 'dataset')} ({ds.get('split', '?')})"
    lines = [
        f"### {title}: {report['n_queries']} queries, {ds.get('n_documents', '?')} documents",
        "",
        "| Retriever | " + " | ".join(labels) + " | ms/query |",
        "|---|" + "---:|" * (len(metrics) + 1),
    ]
    timing = report.get("timing", {})
    for name, entry in report["retrievers"].items():
        ms = timing.get(name, {}).get("ms_per_query")
        cells = [_fmt(entry["mean"][m]) for m in metrics] + [f"{ms:.1f}" if ms else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    field = report.get("breakdown_field", BREAKDOWN_FIELD)
    if any(f"by_{field}" in e for e in report["retrievers"].values()):
        lines += ["", f"By query {field}:", ""]
        lines.append(f"| Retriever | {field} | n | " + " | ".join(labels) + " |")
        lines.append("|---|---|---:|" + "---:|" * len(metrics))
        for name, entry in report["retrievers"].items():
            for group, g in entry.get(f"by_{field}", {}).items():
                cells = [_fmt(g["mean"][m]) for m in metrics]
                lines.append(f"| {name} | {group} | {g['n']} | " + " | ".join(cells) + " |")
    comparisons = report.get("comparisons", [])
    if comparisons:
        sig = report.get("significance", {})
        test = "paired t-test" if sig.get("test") == "student" else "Fisher randomization test"
        lines += [
            "",
            f"Significance ({test}): p-values, * p < {sig.get('max_p', 0.05)}; "
            "the arrow shows whether the first retriever scored higher or lower.",
            "",
            "| Comparison | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(metrics),
        ]
        by_pair: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
        for row in comparisons:
            by_pair.setdefault((row["a"], row["b"]), {})[row["metric"]] = row
        for (a, b), rows in by_pair.items():
            cells = [_p_cell(rows[m]) for m in metrics]
            lines.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Bar chart of each retriever's metrics (and nDCG by query group) saved as PNG.

    matplotlib is imported here, and the figure is drawn on an Agg canvas without pyplot,
    so no global backend state changes.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = list(report["metrics"])
    names = list(report["retrievers"])
    field = report.get("breakdown_field", BREAKDOWN_FIELD)
    groups = sorted({g for e in report["retrievers"].values() for g in e.get(f"by_{field}", {})})
    fig = Figure(figsize=(11 if groups else 8, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, width_ratios=[3, 1]) if groups else [fig.subplots()]
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(metrics))
    for i, name in enumerate(names):
        values = [report["retrievers"][name]["mean"][m] for m in metrics]
        bars = axes[0].bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        axes[0].bar_label(bars, fmt="%.3f", fontsize=6, padding=2, rotation=90)
    ds = report.get("dataset", {})
    axes[0].set_title(f"{ds.get('name', '')} ({ds.get('split', '')}), {report['n_queries']} queries")
    axes[0].set_xticks(x, [metric_label(m) for m in metrics])
    axes[0].set_ylim(0, 1.15)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(names), fontsize=8)
    if groups:
        main = metrics[0]
        gx = np.arange(len(groups))
        for i, name in enumerate(names):
            by = report["retrievers"][name].get(f"by_{field}", {})
            values = [by.get(g, {}).get("mean", {}).get(main, 0.0) for g in groups]
            axes[1].bar(gx + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        axes[1].set_xticks(gx, groups)
        axes[1].set_ylim(0, 1.15)
        axes[1].set_title(f"{metric_label(main)} by {field}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
