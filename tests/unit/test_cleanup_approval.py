"""What the approval's answer means, and the Markdown the approver reads (no database needed)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from trade_migration.cleanup import approval, gates
from trade_migration.core.errors import NotApproved

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
ALICE = {"id": "alice", "name": "Alice Ops"}


@pytest.mark.parametrize("response, action, line", [
    ({"chosen_options": ["Approve"], "responded_by_user": ALICE, "responded_at": AT, "params_input": {}},
     approval.APPROVED, "Approve by Alice Ops at 2026-11-24 09:30:00 UTC"),
    ({"chosen_options": ["Reject"], "responded_by_user": ALICE, "responded_at": AT.isoformat()},
     approval.REJECTED, "Reject by Alice Ops at 2026-11-24 09:30:00 UTC"),
    ({"chosen_options": ["Reject"], "responded_by_user": None, "responded_at": AT, "timedout": True},
     approval.REJECTED_BY_DEFAULT, "Reject by default (no answer before the timeout) at 2026-11-24 09:30:00 UTC"),
    (None, approval.REJECTED, "no answer recorded by the approval task"),
])
def test_what_an_answer_means(response, action, line):
    decision = approval.Decision.from_response(response)
    assert (decision.action, decision.line()) == (action, line)
    if action == approval.APPROVED:
        assert approval.require_approval(response) == approval.Decision("Approve", "Alice Ops", "alice", AT, False)
    else:
        with pytest.raises(NotApproved,
                           match=re.escape(f"needs a person's Approve in the approval task; found: {line}.")):
            approval.require_approval(response)


def test_an_approve_without_a_person_is_not_an_approval():
    """The timeout default can only be Reject, but an Approve with nobody behind it must not count either."""
    response = {"chosen_options": ["Approve"], "responded_by_user": None, "responded_at": AT, "timedout": True}
    assert not approval.Decision.from_response(response).approved
    with pytest.raises(NotApproved):
        approval.require_approval(response)


def _report() -> dict:
    history = [{"started_at": "2026-11-24T02:00:00+00:00", "run_id": "scheduled__2026-11-24", "mode": "sampled",
                "status": "clean", "rows_checked": 1200, "missing": 0, "mismatched": 0, "orphans": 0,
                "repaired": 0, "ranges_checked": 4, "ranges_total": 64}]
    checked = (
        gates.Gate("read_path", True, "reads on user_trades since 2026-10-01 00:00 UTC (54.4 days; needs 30)"),
        gates.Gate("parity", True, "1 of the last 1 runs clean or repaired", {"history": history}),
        gates.Gate("rejects", True, "3 rejected trades {'bad_price': 3} acknowledged | by this run", {"count": 3}),
    )
    return gates.GateReport("trading", AT, checked).to_dict()


def test_the_body_shows_gates_counts_parity_and_the_archive():
    text = approval.body(_report(), {"settled_trades": 1003, "user_trades": 2010, "ranges": 64},
                         archive_url="file:///srv/archive/manual__1", run_id="manual__1",
                         response_timeout=timedelta(hours=24))
    lines = text.splitlines()
    assert lines[0] == "## Drop `trading.settled_trades`?"
    assert "| read_path | pass | reads on user_trades since 2026-10-01 00:00 UTC (54.4 days; needs 30) |" in lines
    assert "| rejects | pass | 3 rejected trades {'bad_price': 3} acknowledged \\| by this run |" in lines
    assert "| settled_trades | 1,003 |" in lines and "| user_trades | 2,010 |" in lines
    assert "1,003 settled trades less 3 rejected make 2,000 user_trades rows (one per side);" in text
    assert "| 2026-11-24 02:00 | scheduled__2026-11-24 | sampled | clean | 4/64 | 1,200 | 0 | 0 | 0 | 0 |" in lines
    assert "Parquet under `file:///srv/archive/manual__1`" in text
    assert "chosen by default after 24 h without an answer." in text


def test_the_body_says_plainly_when_there_is_no_archive():
    text = approval.body(_report(), {"settled_trades": 3, "user_trades": 0, "ranges": 1}, archive_url="file:///x",
                         skip_archive_reason="kept in the data lake since 2024", run_id="r",
                         response_timeout=timedelta(hours=24))
    assert "**No archive**: the run opted out because: kept in the data lake since 2024" in text
    assert "/x" not in text


@pytest.mark.parametrize("span, text", [(timedelta(hours=24), "24 h"), (timedelta(minutes=90), "90 min"),
                                        (timedelta(seconds=40), "40 s")])
def test_the_timeout_is_said_in_its_own_unit(span, text):
    assert approval._duration(span) == text


@pytest.mark.parametrize("state, waited_s, verdict", [
    ("awaiting_input", 14_399, approval.WAIT),
    ("awaiting_input", 14_400, approval.ALERT),
    (None, 20_000, approval.ALERT),              # not started yet, and the run waits: still worth a page
    ("success", 20_000, approval.STOP),          # answered (or taken by default): nothing to page about
    ("upstream_failed", 0, approval.STOP),
])
def test_the_approval_watch_alerts_once_after_the_limit(state, waited_s, verdict):
    assert approval.watch_verdict(state, waited_s, 14_400) == verdict


def test_the_watch_tells_the_notifier_with_the_table_and_the_default_time(monkeypatch):
    told = []
    monkeypatch.setattr(approval.notify, "send", told.append)
    summary = {"asked_at": AT.isoformat(), "table": "trading.settled_trades"}
    args = {"dag_id": "user_trades_cleanup", "run_id": "r1", "response_timeout": timedelta(hours=24)}
    assert approval.watch("awaiting_input", summary, at=AT + timedelta(hours=1), **args) is False
    assert told == []
    assert approval.watch("awaiting_input", summary, at=AT + timedelta(hours=5), **args) is True
    [notice] = told
    assert notice.subject == "user_trades cleanup: the drop of trading.settled_trades waits for approval"
    assert "rejected by default at 2026-11-25 09:30 UTC" in notice.body
    assert (notice.details["alert"], notice.details["task"], notice.details["waited_s"]) == (
        "approval_waiting", "approve", 18_000.0)
