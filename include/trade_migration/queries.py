"""The gateway's two read paths, the shadow comparison between them, and their latency.

"My trades in SYMBOL, newest first" for one user:
- old: every trade of the user through the buyer and the seller index of settled_trades, then
  filtered by symbol, de-duplicated (a self-trade is found by both), converted and sorted here;
- new: the first rows of one user_trades partition, already in that order.
Both return user_trades-shaped rows (statements.USER_TRADE_COLUMNS order), so gateway code can
swap one for the other and the shadow compare can diff them row by row.
"""
from __future__ import annotations

import calendar
import random
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime

from cassandra.cluster import Session

from . import statements
from .config import Config
from .cql import prepared
from .statements import USER_TRADE_COLUMNS
from .symbols import load_symbol_ids
from .tokens import MAX_TOKEN, MIN_TOKEN
from .trades import Reject, convert

DEFAULT_LIMIT = 100   # one page of the gateway's trade history


def _ms(at: datetime) -> int:
    """Epoch milliseconds of a timestamp, naive (the driver's UTC) or aware."""
    return calendar.timegm(at.utctimetuple()) * 1000 + at.microsecond // 1000


def order_key(row: tuple) -> tuple:
    """user_trades clustering order: settled_at DESC, trade_id DESC, side ASC."""
    return -_ms(row[2]), -row[3], row[4]


class ReadPaths:
    """Both read paths of one keyspace; symbols and statements are loaded once."""

    def __init__(self, session: Session, config: Config):
        ks, cl = config.keyspace, config.read_cl
        self.session = session
        self.by_buyer = prepared(session, statements.old_trades_by_buyer(ks), consistency=cl)
        self.by_seller = prepared(session, statements.old_trades_by_seller(ks), consistency=cl)
        self.partition = prepared(session, statements.new_user_trades(ks), consistency=cl)
        self.symbol_ids = load_symbol_ids(session, ks)

    def old(self, user_id: int, symbol: str, limit: int | None = DEFAULT_LIMIT) -> list[tuple]:
        """The old path. Trades that cannot be converted (rejects) are left out, as in user_trades."""
        if symbol not in self.symbol_ids:
            return []
        seen: set[int] = set()
        rows: list[tuple] = []
        for stmt in (self.by_buyer, self.by_seller):
            for trade in self.session.execute(stmt, (user_id,)):
                if trade.symbol != symbol or trade.trade_id in seen:
                    continue
                seen.add(trade.trade_id)
                out = convert(tuple(trade), self.symbol_ids)
                if not isinstance(out, Reject):
                    rows += [r for r in out if r[0] == user_id]
        rows.sort(key=order_key)
        return rows if limit is None else rows[:limit]

    def new(self, user_id: int, symbol: str, limit: int = DEFAULT_LIMIT) -> list[tuple]:
        """The new path: one partition, LIMIT n, in clustering order."""
        symbol_id = self.symbol_ids.get(symbol)
        if symbol_id is None:
            return []
        return [tuple(r) for r in self.session.execute(self.partition, (user_id, symbol_id, limit))]


def sample_pairs(session: Session, config: Config, count: int, *, seed: int,
                 symbols: Collection[str] | None = None) -> list[tuple[int, str]]:
    """Up to `count` distinct (user_id, symbol) pairs with trades, chosen by a seeded random walk
    over settled_trades tokens (so active users are more likely, as in the gateway's traffic)."""
    rng = random.Random(seed)
    stmt = prepared(session, statements.sample_settled_parties(config.keyspace), consistency=config.read_cl)
    pairs: list[tuple[int, str]] = []
    seen: set[tuple[int, str]] = set()
    for _ in range(count * 4):
        if len(pairs) >= count:
            break
        row = session.execute(stmt, (rng.randint(MIN_TOKEN, MAX_TOKEN - 1), 1)).one()
        side = rng.random() < 0.5
        if row is None:
            continue
        user = row.buyer_user_id if side else row.seller_user_id
        pair = (user, row.symbol)
        if user is None or pair in seen or (symbols is not None and row.symbol not in symbols):
            continue
        seen.add(pair)
        pairs.append(pair)
    return pairs


# --- shadow compare -------------------------------------------------------------------------------
MISSING, EXTRA, MISMATCH = "missing_in_user_trades", "only_in_user_trades", "mismatch"


@dataclass(frozen=True)
class Difference:
    user_id: int
    symbol: str
    kind: str            # MISSING, EXTRA or MISMATCH
    trade_id: int
    side: str
    settled_at: str
    detail: str = ""

    def line(self) -> str:
        tail = f": {self.detail}" if self.detail else ""
        return (f"user {self.user_id} {self.symbol} trade {self.trade_id} {self.side}"
                f" settled {self.settled_at}: {self.kind}{tail}")


@dataclass
class ShadowReport:
    pairs: int = 0
    rows_compared: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences

    def summary(self, show: int = 50) -> dict:
        """JSON-ready, for the audit log: counts by kind and the first `show` differences."""
        kinds: dict[str, int] = {}
        for d in self.differences:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1
        return {"pairs": self.pairs, "rows_compared": self.rows_compared, "clean": self.clean,
                "differences": len(self.differences), "by_kind": kinds,
                "first": [d.line() for d in self.differences[:show]]}

    def text(self) -> str:
        head = (f"shadow compare: {self.pairs} users x symbol, {self.rows_compared} rows,"
                f" {len(self.differences)} differences")
        return "\n".join([head] + ["  " + d.line() for d in self.differences])


def compare_pair(paths: ReadPaths, user_id: int, symbol: str,
                 limit: int = DEFAULT_LIMIT) -> tuple[int, list[Difference]]:
    """Diff the new path's page against the same window of the old path: (rows compared, differences).

    The window ends at the new page's last row when the page is full, so a row missing from
    user_trades is reported once, not also as a shifted page boundary.
    """
    old_all = paths.old(user_id, symbol, limit=None)
    new = paths.new(user_id, symbol, limit)
    if len(new) >= limit:
        boundary = order_key(new[-1])
        old_window = [r for r in old_all if order_key(r) <= boundary]
    else:
        old_window = old_all
    old_by_key = {order_key(r): r for r in old_window}
    new_by_key = {order_key(r): r for r in new}
    diffs = []
    for key in sorted(old_by_key.keys() | new_by_key.keys()):
        a, b = old_by_key.get(key), new_by_key.get(key)
        row = a or b
        where = dict(user_id=user_id, symbol=symbol, trade_id=row[3], side=row[4], settled_at=row[2].isoformat())
        if b is None:
            diffs.append(Difference(kind=MISSING, **where))
        elif a is None:
            diffs.append(Difference(kind=EXTRA, **where))
        elif a != b:
            cols = [f"{c}: settled_trades {x!r}, user_trades {y!r}"
                    for c, x, y in zip(USER_TRADE_COLUMNS, a, b, strict=True) if x != y]
            diffs.append(Difference(kind=MISMATCH, detail="; ".join(cols), **where))
    return len(old_by_key.keys() | new_by_key.keys()), diffs


def shadow_compare(paths: ReadPaths, pairs: list[tuple[int, str]], *, limit: int = DEFAULT_LIMIT,
                   recheck_delay_s: float = 1.0) -> ShadowReport:
    """Run both paths for every pair and report every difference that is still there on a
    second look: a live trade settled between the two reads of a pair is not a difference."""
    report = ShadowReport(pairs=len(pairs))
    suspects = []
    for user_id, symbol in pairs:
        rows, diffs = compare_pair(paths, user_id, symbol, limit)
        report.rows_compared += rows
        if diffs:
            suspects.append((user_id, symbol, diffs))
    if suspects:
        time.sleep(recheck_delay_s)
    for user_id, symbol, diffs in suspects:
        again = set(compare_pair(paths, user_id, symbol, limit)[1])
        report.differences += [d for d in diffs if d in again]
    return report


class ReadPathBlocked(RuntimeError):
    """read_path may not move to user_trades: the shadow comparison was not clean."""


def require_clean(summary: dict | None, *, override_reason: str = "") -> None:
    """Switching reads to user_trades needs a clean shadow compare of at least one user (a
    ShadowReport.summary()), or an override with a reason."""
    if override_reason.strip():
        return
    if summary is None or not summary["pairs"]:
        raise ReadPathBlocked("switching read_path to user_trades needs a shadow comparison of at least"
                              " one user first (or an override_reason)")
    if summary["clean"]:
        return
    first = "\n  ".join(summary["first"][:10])
    raise ReadPathBlocked(
        f"switching read_path to user_trades needs a clean shadow comparison; found"
        f" {summary['differences']} differences over {summary['pairs']} users x symbol:\n  {first}\n"
        f"fix them (backfill, verify) and rerun, or give an override_reason")


# --- latency --------------------------------------------------------------------------------------
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
