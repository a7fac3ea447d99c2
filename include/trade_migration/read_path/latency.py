"""How fast each read path answers: p50 / p99, cold then warm, on the same users."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from trade_migration.read_path.paths import DEFAULT_LIMIT, ReadPaths


@dataclass(frozen=True)
class Latency:
    samples: int
    p50_ms: float
    p99_ms: float


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _timed(query: Callable[[int, str], list], pairs: list[tuple[int, str]], answers: list | None = None) -> Latency:
    took = []
    for user_id, symbol in pairs:
        started = time.perf_counter()
        rows = query(user_id, symbol)
        took.append((time.perf_counter() - started) * 1000)
        if answers is not None:
            answers.append(rows)
    return Latency(len(took), round(percentile(took, 50), 3), round(percentile(took, 99), 3))


def measure(query: Callable[[int, str], list], pairs: list[tuple[int, str]],
            answers: list | None = None) -> dict[str, Latency]:
    """cold: each pair's first query in this run; warm: the same queries again, right after.
    The cold pass's results are appended to `answers` when given."""
    if not pairs:
        raise ValueError("no users to measure: is settled_trades empty?")
    return {"cold": _timed(query, pairs, answers), "warm": _timed(query, pairs)}


def benchmark(paths: ReadPaths, pairs: list[tuple[int, str]], *, limit: int = DEFAULT_LIMIT) -> dict:
    """p50/p99 of both paths over the same pairs, cold then warm, and old/new ratios.

    `different_answers` lists the pairs whose page differed between the paths: timing two paths
    that answer differently (say, before the backfill) compares nothing.
    """
    old_pages: list = []
    new_pages: list = []
    new = measure(lambda u, s: paths.new(u, s, limit), pairs, new_pages)
    old = measure(lambda u, s: paths.old(u, s, limit), pairs, old_pages)
    ratio = {f"{phase}_{p}": round(getattr(old[phase], f"{p}_ms") / max(getattr(new[phase], f"{p}_ms"), 1e-6), 1)
             for phase in ("cold", "warm") for p in ("p50", "p99")}
    return {"pairs": len(pairs), "limit": limit,
            "old": {k: asdict(v) for k, v in old.items()},
            "new": {k: asdict(v) for k, v in new.items()},
            "ratio": ratio,
            "rows": sum(len(page) for page in new_pages),
            "different_answers": [list(pair) for pair, a, b in zip(pairs, old_pages, new_pages, strict=True) if a != b]}


def format_benchmark(report: dict) -> str:
    lines = [f"read latency over {report['pairs']} users x symbol, page of {report['limit']} (ms);"
             f" {report['rows']:,} rows, {len(report['different_answers'])} pages differing between the paths",
             f"  {'path':<22}{'cold p50':>10}{'cold p99':>10}{'warm p50':>10}{'warm p99':>10}"]
    for name, label in (("old", "old (indexes+filter)"), ("new", "new (one partition)")):
        r = report[name]
        lines.append(f"  {label:<22}{r['cold']['p50_ms']:>10.2f}{r['cold']['p99_ms']:>10.2f}"
                     f"{r['warm']['p50_ms']:>10.2f}{r['warm']['p99_ms']:>10.2f}")
    q = report["ratio"]
    lines.append(f"  {'old / new':<22}{q['cold_p50']:>9.1f}x{q['cold_p99']:>9.1f}x"
                 f"{q['warm_p50']:>9.1f}x{q['warm_p99']:>9.1f}x")
    return "\n".join(lines)
