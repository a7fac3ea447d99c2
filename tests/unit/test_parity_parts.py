"""The parts of a verification run that need no database: digests, sample windows, scope, status, notices."""
from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from trade_migration.core import notify
from trade_migration.core.convert import Reject
from trade_migration.core.settings import PARITY_NOTIFIER
from trade_migration.core.tokens import MAX_TOKEN, MIN_TOKEN, split_ring
from trade_migration.verify import parity, row_parity
from trade_migration.verify.digests import BUCKETS, Digest, bucket, buckets_of, row_hash
from trade_migration.verify.parity_run import (
    ALL,
    CELLS,
    FULL,
    SAMPLED,
    Run,
    Scope,
    Tally,
    derive_seed,
    merge_tallies,
)
from trade_migration.verify.rejects import Rejects
from trade_migration.verify.windows import MAX_MS, MIN_MS, merge, pick

ROW = (5, 1, datetime(2026, 5, 1, 12, 0, 0, 123000), 10_000_001, "BUY", 6_700_000, 12, None, 20_000_002, 7,
       True, None, 1_250_000)


def test_the_rejects_listed_are_the_lowest_trade_ids_whatever_order_they_came_in():
    entries = [(t, t % 7, Reject("bad_price" if t % 2 else "bad_quantity", f"r{t}")) for t in range(1000, 0, -3)]
    lowest = [(t, i, f"{out.code}: r{t}") for t, i, out in sorted(entries)[:5]]
    assert [t for t, _, _ in lowest] == [1, 4, 7, 10, 13]
    for seed in range(3):
        shuffled = random.Random(seed).sample(entries, len(entries))
        one = Rejects(5)
        for t, i, out in shuffled:
            one.note(i, t, out)
        assert one.sorted() == lowest
        assert one.by_reason == {"bad_price": 167, "bad_quantity": 167}   # every reject counted, listed or not
        assert json.loads(json.dumps(one.sorted())) == [list(e) for e in lowest]
    kept = Rejects(0)
    kept.note(0, 1, entries[0][2])
    assert kept.sorted() == [] and kept.by_reason == {"bad_quantity": 1}


def test_a_digest_tells_equal_row_sets_from_different_ones_in_any_order():
    rows = [ROW, (*ROW[:5], ROW[5] + 1, *ROW[6:]), (*ROW[:4], "SELL", *ROW[5:])]
    a, b = Digest(), Digest()
    for r in rows:
        a.add(3, row_hash(r))
    for r in reversed(rows):
        b.add(3, row_hash(r))
    assert a.differing(b) == set()
    b.add(3, row_hash(ROW))                       # a duplicate does not cancel out
    assert a.differing(b) == {3}
    c = Digest.from_json(json.loads(json.dumps(a.to_json())))
    assert c.differing(a) == set() and c.merge(Digest({7: [1, 5]})).differing(a) == {7}


def test_row_hash_is_the_same_in_another_process():
    """Mapped tasks run in other processes, where Python's own hash() of str and datetime differs."""
    import subprocess
    import sys

    from conftest import REPO

    code = ("import datetime;"
            "from trade_migration.verify.digests import row_hash;"
            f"print(row_hash({ROW!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345"}, cwd=str(REPO))
    assert int(out.stdout) == row_hash(ROW)


def test_buckets_cover_the_ring_in_order():
    assert bucket(MIN_TOKEN + 1) == 0 and bucket(MAX_TOKEN) == BUCKETS - 1
    ranges = split_ring([0], 7)
    seen = [b for r in ranges for b in buckets_of(r)]
    assert seen[0] == 0 and seen[-1] == BUCKETS - 1
    assert all(b2 in (b1, b1 + 1) for b1, b2 in pairwise(seen))   # shared edges only


def test_a_sample_window_is_seeded_holds_its_share_and_is_open_at_the_ends_it_touches():
    times = list(range(0, 20_000, 10))                     # 2,000 settlement times, ms
    window = pick(times, 0.05, 7)
    assert window == pick(times, 0.05, 7) != pick(times, 0.05, 8)
    start, end = window
    assert sum(start <= t < end for t in times) == 100     # a twentieth of the times
    assert pick(times, 1.0, 7) == pick([], 0.05, 7) == (MIN_MS, MAX_MS)   # everything
    few = list(range(0, 100, 10))
    ends = {pick(few, 0.5, seed) for seed in range(200)}
    assert any(a == MIN_MS for a, _ in ends) and any(b == MAX_MS for _, b in ends)
    assert all(a == MIN_MS or b == MAX_MS or sum(a <= t < b for t in few) == 5 for a, b in ends)
    assert pick([5] * 100, 0.1, 1)[1] > pick([5] * 100, 0.1, 1)[0]   # one millisecond at least
    with pytest.raises(ValueError):
        pick(times, 0, 1)
    assert merge([(10, 20), (0, 5), (18, 30), (30, 31), (40, 50)]) == ((0, 5), (10, 31), (40, 50))
    assert derive_seed("scheduled__2026-11-24T02:00:00+00:00") == derive_seed("scheduled__2026-11-24T02:00:00+00:00")
    assert 0 <= derive_seed("x") < 2**63


def run(mode=SAMPLED, **kw) -> Run:
    ranges = tuple(split_ring([0], 4))
    started = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    return Run(run_id="r", started_us=int(started.timestamp() * 1e6), mode=mode, seed=1, sample_share=0.5,
               ranges=ranges, **kw)


def test_a_run_survives_json():
    r = run(repair=True, dual_write_since_us=5, windows=((1_000, 2_000), (3_000, MAX_MS)))
    assert Run.from_json(json.loads(json.dumps(r.to_json()))) == r
    assert r.recent_since == datetime(2026, 11, 23, 2, 0)
    assert r.scans(r.ranges[0]) == [(r.ranges[0].start, r.ranges[0].end, datetime(1970, 1, 1, 0, 0, 1),
                                     datetime(1970, 1, 1, 0, 0, 2)),
                                    (r.ranges[0].start, r.ranges[0].end, datetime(1970, 1, 1, 0, 0, 3),
                                     datetime(9999, 12, 31))]
    assert run().scans(r.ranges[1]) == [(r.ranges[1].start, r.ranges[1].end)]
    assert [r.range_index(rg.end) for rg in r.ranges] == [0, 1, 2, 3]
    assert [r.range_index(rg.start + 1) for rg in r.ranges] == [0, 1, 2, 3]
    s = Scope({0: ALL, 1: CELLS}, {2: CELLS}, frozenset({1}), frozenset({2, 3}))
    assert Scope.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_the_forward_check_covers_what_it_looks_up_and_nothing_else():
    r = run()
    tok = {i: rg.end for i, rg in enumerate(r.ranges)}
    s = Scope({0: ALL})
    assert s.covers(r, tok[0], 0) is True
    assert s.covers(r, tok[2], 0) is False
    cells = Scope({3: CELLS}, dirty_source=frozenset({bucket(tok[3])}), dirty_target=frozenset({bucket(0)}))
    assert cells.covers(r, tok[3], 0) is True
    assert cells.covers(r, tok[3], MIN_TOKEN + 1) is False


def test_status_clean_repaired_broken():
    assert parity.status_of(Tally(), False) == parity.CLEAN
    assert parity.status_of(Tally(missing=2, mismatched=1, repaired=3), True) == parity.REPAIRED
    assert parity.status_of(Tally(missing=2, mismatched=1, repaired=3), False) == parity.BROKEN
    assert parity.status_of(Tally(missing=2, repaired=1), True) == parity.BROKEN
    assert parity.status_of(Tally(orphans=1), True) == parity.BROKEN   # orphans are never deleted
    merged = merge_tallies([{"0": Tally(missing=1).to_json()}, {"0": Tally(missing=2, late=1).to_json()}])
    assert merged == {0: Tally(missing=3, late=1)}


def test_a_run_reads_rows_one_by_one_where_digests_differ_or_everywhere_when_not_narrowed():
    differing = {"expected_source": {"5": [1, 9]}, "actual_source": {}, "expected_target": {"700": [1, 9]},
                 "actual_target": {}}
    for mode in (FULL, SAMPLED):
        s = parity.narrow(run(mode), [{"digests": differing}])
        assert s.dirty_source == {5} and s.dirty_target == {700}
        assert s.forward == {0: CELLS} and s.reverse == {i: CELLS for i, rg in enumerate(run().ranges)
                                                         if 700 in buckets_of(rg)}
    full = parity.narrow(run(FULL, narrow=False), [])
    assert full.forward == full.reverse == {i: ALL for i in range(4)}
    assert parity.narrow(run(FULL), [{"digests": {}}]) == Scope()


def recorded(notice):
    recorded.last = notice


def test_user_trades_reads_cover_every_key_once_within_their_bound():
    """A market maker's many keys of one symbol go IN_KEYS at a time; single keys of other users
    share reads of their symbol, never more than SLICES_PER_READ user x key pairs."""
    at = datetime(2026, 5, 1)
    keys = [(1, 7, at, t, "BUY") for t in range(250)]
    keys += [(1000 + u, 7 + u % 2, at, 10_000 + u, "SELL") for u in range(60)]
    reads = row_parity.reads_of(keys)
    asked = [(u, s, *c) for users, s, clustering in reads for u in users for c in clustering]
    assert [asked.count(k) for k in keys] == [1] * len(keys)
    assert all(len(c) <= row_parity.IN_KEYS for _, _, c in reads)
    assert all(len(u) * len(c) <= row_parity.SLICES_PER_READ or len(u) == 1 for u, _, c in reads)
    assert sum(1 in u for u, _, _ in reads) == 3 and len(reads) < 3 + 60 // 4


def test_the_notifier_is_pluggable_and_never_silent(tmp_path, caplog):
    assert notify.resolve(None) is notify.log_notifier
    assert notify.resolve(f"{__name__}:recorded") is recorded
    assert notify.resolve(f"{__name__}.recorded") is recorded
    (tmp_path / "summary.json").write_text(json.dumps({"status": "broken", "missing": 2, "mismatched": 0,
                                                       "orphans": 1, "rejected": 4, "repaired": 0}))
    notice = notify.failure_notice(dag_id="d", run_id="r1", reason="task_failure", failed_task="conclude",
                                   report_folder=tmp_path)
    notify.send(notice, {PARITY_NOTIFIER.name: f"{__name__}:recorded"})
    assert recorded.last.subject == "user_trades parity broken: d run r1"
    assert recorded.last.body == (f"reason: task_failure (task conclude)\n"
                                  f"figures: missing 2, mismatched 0, orphans 1, rejected 4, repaired 0\n"
                                  f"report: {tmp_path}")
    with caplog.at_level(logging.ERROR):
        notify.send(notice, {PARITY_NOTIFIER.name: "no_such_module_here:notify"})
    assert "user_trades parity broken: d run r1" in caplog.text   # the log got it anyway


def test_recent_hours_is_kept_within_its_bounds():
    assert run(recent_hours=6).recent_since == datetime(2026, 11, 23, 20, 0)
    for bad in (-1, 24 * 366 + 1):
        with pytest.raises(ValueError, match="recent_hours must be in"):
            run(recent_hours=bad)
