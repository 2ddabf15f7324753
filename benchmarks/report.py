"""Targets and the Markdown report, from the results dict that ``run.py`` writes as JSON.

Pure functions of the results: no measuring here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Row = list[str]


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, Mapping) or key not in d:
            return None
        d = d[key]
    return d


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _ratio(a: Any, b: Any) -> float | None:
    ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and b
    return round(a / b, 3) if ok else None


def _side_by_side(label: str, ours: Any, peer: Any, digits: int = 1) -> Row:
    return [label, _fmt(ours, digits), _fmt(peer, digits), _fmt(_ratio(ours, peer), 3)]


def _table(header: Sequence[str], rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return [*lines, *("| " + " | ".join(r) + " |" for r in rows), ""]


def peer_best_search_p50(warm_peer: Any) -> float | None:
    """The peer's faster warm search p50 (default torch threads or one thread)."""
    values = [_get(warm_peer, k, "p50_ms") for k in ("search", "search_torch_1_thread")]
    present = [v for v in values if v is not None]
    return min(present) if present else None


# --------------------------------------------------------------------------- targets


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue whose part ran: measured value, limit, met (None: no value)."""
    out: list[dict[str, Any]] = []

    def add(part: str, name: str, value: float | None, limit: float, kind: str = "max") -> None:
        if part in results:
            met = None if value is None else (value <= limit if kind == "max" else value >= limit)
            out.append({"target": name, "part": part, "value": value, "limit": limit, "kind": kind, "met": met})

    warm = _get(results, "warm", "lbp", "ours")
    # The speed issue set 10 / 25 ms for the one-study answers of the time; the synthesis
    # issue (answers gathering every relevant study, several searches for multi-part
    # questions) set the uncached p50 at 15 ms and left the others as they were.
    limits = {
        ("uncached", "p50_ms"): 15,
        ("uncached", "p95_ms"): 25,
        ("cached", "p50_ms"): 10,
        ("cached", "p95_ms"): 25,
    }
    for (cache, p), limit in limits.items():
        add("warm", f"warm ask {p[:3]} ms, LBP ({cache} query embedding)", _get(warm, f"ask_{cache}", p), limit)
    cold = _get(results, "cold", "cli_ask", "first_answer", "median_s")
    add("cold", "CLI cold start to first answer s (median)", cold, 2.5)
    for corpus in ("lbp", "pubmedqa"):
        ours = _get(results, "warm", corpus, "ours", "search_uncached", "p50_ms")
        best = peer_best_search_p50(_get(results, "warm", corpus, "peer"))
        add("warm", f"search p50 / peer's best search p50, {corpus}", _ratio(ours, best), 0.5)
        # Like for like: tokens encoded per second. On LBP our build also embeds every sentence
        # for answers (1.5x the peer's tokens), so passages/s would charge us for extra work;
        # on PubMedQA (no sentence vectors) the two ratios are the same.
        build = _get(results, "build", corpus) or {}
        speed = _ratio(_get(build, "ours", "tokens_per_s"), _get(build, "peer", "tokens_per_s"))
        add("build", f"build tokens encoded/s / peer's, {corpus}", speed, 1.0, "min")
    for size, ann in (_get(results, "ann") or {}).items():
        if int(size) >= 1_000_000:
            for method in ("hnsw", "ivf"):
                p50 = _get(ann, method, "best_at_0.95", "p50_ms")
                add("ann", f"{method} p50 ms at recall@10 >= 0.95, n={int(size):,}", p50, 5)
    return out


# --------------------------------------------------------------------------- tables


def _build_rows(results: Mapping[str, Any]) -> list[Row]:
    rows = []
    for corpus, b in (_get(results, "build") or {}).items():
        if not isinstance(b, Mapping) or "ours" not in b:
            continue
        ours, peer = b.get("ours", {}), b.get("peer", {})
        n = len(_get(b, "samples", "ours") or [1])
        label = f"{corpus} build{' (best of ' + str(n) + ')' if n > 1 else ''} ({_fmt(ours.get('passages'))} passages"
        label += f" + {ours['sentences']:,} sentence vectors)" if ours.get("sentences") else ")"
        for metric, key, digits in (
            ("passages/s", "passages_per_s", 1),
            ("tokens encoded/s", "tokens_per_s", 0),
            ("time s", "seconds", 1),
            ("peak memory MB", "peak_rss_mb", 0),
            ("index size on disk MB", "index_mb", 2),
        ):
            rows.append(_side_by_side(f"{label}: {metric}", ours.get(key), peer.get(key), digits))
    return rows


def _warm_rows(results: Mapping[str, Any]) -> list[Row]:
    rows = []
    for corpus, w in (_get(results, "warm") or {}).items():
        ours, peer = w.get("ours", {}), w.get("peer", {})
        for p in ("p50_ms", "p95_ms", "p99_ms"):
            rows.append(
                _side_by_side(
                    f"{corpus} warm search {p[:3]} ms (ours uncached; peer default)",
                    _get(ours, "search_uncached", p),
                    _get(peer, "search", p),
                    2,
                )
            )
        best = peer_best_search_p50(peer)
        rows.append(
            _side_by_side(
                f"{corpus} warm search p50 ms (ours uncached; peer best)",
                _get(ours, "search_uncached", "p50_ms"),
                best,
                2,
            )
        )
        rows.append(
            _side_by_side(
                f"{corpus} warm search p50 ms (ours cached; peer best)", _get(ours, "search_cached", "p50_ms"), best, 2
            )
        )
        for cache in ("uncached", "cached"):
            if f"ask_{cache}" in ours:
                values = " / ".join(_fmt(_get(ours, f"ask_{cache}", p), 2) for p in ("p50_ms", "p95_ms", "p99_ms"))
                rows.append([f"{corpus} warm ask p50 / p95 / p99 ms ({cache})", values, "(no ask)", ""])
        kinds = ours.get("ask_uncached_by_kind") or {}
        if kinds:
            parts = ", ".join(f"{k} {_fmt(v.get('p50_ms'), 1)}" for k, v in kinds.items())
            rows.append([f"{corpus} warm ask p50 ms by question set (uncached)", parts, "", ""])
        rss = (ours.get("rss_mb"), peer.get("rss_mb"))
        rows.append(_side_by_side(f"{corpus} process memory after the queries MB", *rss, 0))
    return rows


def _cold_rows(results: Mapping[str, Any]) -> list[Row]:
    cold = _get(results, "cold") or {}
    app = _get(results, "app") or {}
    rows = []
    if cold:
        peer = _get(cold, "peer_search", "first_answer", "median_s")
        for name in ("ask", "search"):
            ours = _get(cold, f"cli_{name}", "first_answer", "median_s")
            rows.append(_side_by_side(f"cold start, CLI `{name}` to first answer s (median)", ours, peer, 2))
        rss = (_get(cold, "cli_ask", "peak_rss_mb"), _get(cold, "peer_search", "peak_rss_mb"))
        rows.append(_side_by_side("cold start peak memory MB (CLI ask; peer search)", *rss, 0))
        heavy = _get(cold, "imports", "heavy_imported")
        if heavy is not None:
            rows.append(
                ["CLI query path imports torch / gradio / transformers / onnx", ", ".join(heavy) or "none", "", ""]
            )
    if "skipped" in app:
        rows.append(["cold start, app", f"skipped: {app['skipped'][:100]}", "", ""])
    elif app:
        rows.append(["cold start, app to port open s (median)", _fmt(_get(app, "port_open", "median_s"), 2), "", ""])
        rows.append(
            ["cold start, app to index loaded s (median)", _fmt(_get(app, "index_loaded", "median_s"), 2), "", ""]
        )
        rows.append(
            [
                "cold start, app to first REST /api/v1/ask s (median)",
                _fmt(_get(app, "first_rest_answer", "median_s"), 2),
                "",
                "",
            ]
        )
        rows.append(
            ["cold start, app to first Gradio /ask s (median)", _fmt(_get(app, "first_answer", "median_s"), 2), "", ""]
        )
    return rows


def _hardware_lines(hw: Mapping[str, Any]) -> list[str]:
    g, g1 = hw["matmul_gflops"], hw["matmul_gflops_1_thread"]
    lines = [
        f"Encoder bound: numpy float32 matmul {g['best']:.1f} GFLOP/s on all cores (best; median {g['median']:.1f}), "
        f"{g1['best']:.1f} on one; / 0.021 GFLOP per token = {hw['bound_tokens_per_s']:,.0f} tokens/s. "
        f"A {hw['sample']['query_tokens_mean']:.0f}-token query on one core: "
        f"{_fmt(hw.get('single_query_bound_ms'))} ms at best.",
        "",
    ]
    rows = [[k, _fmt(v, 0), f"{hw['share_of_bound'][k]:.0%}"] for k, v in hw["tokens_per_s"].items()]
    for k, v in hw["single_query"].items():
        rows.append([f"one query, {k}", f"p50 {v['p50_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms", ""])
    table = _table(["encoder", "tokens/s", "share of bound"], rows)
    cosine = hw.get("cosine_vs_torch") or {}
    if cosine:
        n = hw["sample"]["queries"]
        parts = ", ".join(f"{k} min {v['min']:.4f} (mean {v['mean']:.4f})" for k, v in cosine.items())
        table += [f"Cosine against sentence-transformers (torch) on the {n} queries, one at a time: {parts}.", ""]
    return lines + table


def _ann_lines(size: str, ann: Mapping[str, Any]) -> list[str]:
    if "error" in ann:
        return [f"Vectors n={size}: error {ann['error'][:300]}", ""]
    d = ann["data"]
    lines = [
        f"Vector index alone, n={int(size):,}, d={ann['dim']}, {ann['queries']} queries; single-query latency, "
        f"one thread. Data: {d['kind']}. Mean cosine of random pairs {d['random_pair_cosine_mean']}, of a query's "
        f"nearest {d['top1_cosine_mean']}, of its 10th nearest {d['top10_cosine_mean']}.",
        "",
    ]
    e = ann["exact"]
    rows = [
        [
            "exact (flat)",
            _fmt(e["build_s"]),
            _fmt(e["memory_mb"], 0),
            "1.000",
            _fmt(e["p50_ms"], 3),
            _fmt(e["p95_ms"], 3),
        ]
    ]
    for method, knob in (("hnsw", "ef_search"), ("ivf", "nprobe")):
        a = ann[method]
        params = f"M={a['M']}, efC={a['ef_construction']}" if method == "hnsw" else f"nlist={a['nlist']}"
        for p in a["curve"]:
            rows.append(
                [
                    f"{method} {params}, {knob}={p[knob]}",
                    _fmt(a["build_s"]),
                    _fmt(a["memory_mb"], 0),
                    f"{p['recall_at_10']:.3f}",
                    _fmt(p["p50_ms"], 3),
                    _fmt(p["p95_ms"], 3),
                ]
            )
    return lines + _table(["index", "build s", "memory MB", "recall@10", "p50 ms", "p95 ms"], rows)


def markdown(results: Mapping[str, Any]) -> str:
    """The report: machine, ours against the peer, encoder bound, vector index at scale, targets."""
    meta = results.get("meta", {})
    m = meta.get("machine", {})
    lines = [
        f"Command: `{meta.get('command', '')}` ({meta.get('duration_s', 0):.0f} s).",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB; load average "
        f"{meta.get('loadavg_start')} at start, {meta.get('loadavg_end')} at end. Other jobs share the machine: "
        "compare ratios, measured side by side in the same run.",
        "",
    ]
    main = _build_rows(results) + _warm_rows(results) + _cold_rows(results)
    if main:
        lines += _table(["measure", "ours", "txtai (peer)", "ours / peer"], main)
    hw = results.get("hardware")
    if hw and "error" not in hw:
        lines += _hardware_lines(hw)
    for size, ann in (results.get("ann") or {}).items():
        lines += _ann_lines(size, ann)
    marks = {True: "yes", False: "**no**", None: "not measured"}
    rows = [
        [t["target"], _fmt(t["value"], 3), ("<= " if t["kind"] == "max" else ">= ") + _fmt(t["limit"]), marks[t["met"]]]
        for t in results.get("targets") or []
    ]
    if rows:
        lines += _table(["target", "measured", "goal", "met"], rows)
    for part, value in results.items():
        if isinstance(value, Mapping) and "error" in value:
            last = [line for line in str(value["error"]).splitlines() if line.strip()][-1:] or [""]
            lines.append(f"Part `{part}` failed: {last[0]}")
    return "\n".join(lines).rstrip() + "\n"
