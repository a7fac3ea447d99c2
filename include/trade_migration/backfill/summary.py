"""Ledger summaries for the backfill's last task and the UI page."""
from __future__ import annotations

from collections import Counter

from trade_migration.core.tokens import check_coverage
from trade_migration.state.ledger import DONE, RangeState


def backfill_summary(states: list[RangeState], slowest: int = 5) -> dict:
    work = states
    by_status = Counter(s.status for s in work)
    complete = bool(work) and by_status.get(DONE, 0) == len(work)
    if complete:
        check_coverage([s.token_range for s in states])   # no token missed, none twice
    timed = sorted((s for s in work if s.seconds is not None), key=lambda s: s.seconds, reverse=True)
    return {
        "ranges": len(work),
        "by_status": dict(by_status),
        "complete": complete,
        "rows_read": sum(s.rows_read for s in states),
        "rows_written": sum(s.rows_written for s in states),
        "rows_rejected": sum(s.rows_rejected for s in states),
        "attempts": sum(s.attempts for s in work),
        "slowest": [{"range": s.label, "seconds": round(s.seconds, 3), "rows_read": s.rows_read}
                    for s in timed[:slowest]],
        "failed": [{"range": s.label, "error": s.last_error} for s in work if s.status == "failed"],
    }


def format_backfill(report: dict) -> str:
    lines = [f"ranges {report['ranges']} {report['by_status']}; rows read {report['rows_read']:,},"
             f" written {report['rows_written']:,}, rejected {report['rows_rejected']:,}"]
    lines += [f"  slow: {s['range']} {s['seconds']}s ({s['rows_read']:,} rows)" for s in report["slowest"]]
    lines += [f"  failed: {f['range']}: {f['error']}" for f in report["failed"]]
    return "\n".join(lines)
