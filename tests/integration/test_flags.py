"""The dual_write / read_path flags on the real node: compare-and-set, audit, bad input, the race."""
from __future__ import annotations

import json
import threading

import pytest

from trade_migration.core.errors import ConfigError, FlagConflict
from trade_migration.state.flags import DUAL_WRITE, READ_PATH, Flag, Flags
from trade_migration.state.phases import State
from trade_migration.statements.flags import flag_select


def flag_rows(db, cfg) -> list:
    return list(db.execute(flag_select(cfg.keyspace, every=True)))


def changes(db, cfg) -> list:
    """Audit entries of flag changes (not 'unchanged'), oldest first."""
    return [r for r in reversed(State(db, cfg).audit_log()) if " -> " in r.action]


def test_unset_flags_read_as_their_defaults(db, cfg):
    flags = Flags(db, cfg)
    assert flags.get(DUAL_WRITE) == Flag(DUAL_WRITE, "off", 0)
    assert flags.all() == {DUAL_WRITE: Flag(DUAL_WRITE, "off", 0),
                           READ_PATH: Flag(READ_PATH, "settled_trades", 0)}


def test_a_change_is_stored_versioned_and_audited(db, cfg):
    flags = Flags(db, cfg)
    on = flags.set(DUAL_WRITE, "on", actor="alice", reason="start dual writes")
    stored = flags.get(DUAL_WRITE)
    assert (stored.value, stored.version, stored.changed_by, stored.reason) == ("on", 1, "alice", "start dual writes")
    assert stored.changed_at == on.changed_at

    off = flags.set(DUAL_WRITE, "off", actor="bob", reason="roll back: settlement latency")
    assert (off.value, off.version) == ("off", 2)

    log = changes(db, cfg)
    assert [(r.phase, r.action, r.actor, r.reason) for r in log] == [
        ("dual_write", "flag dual_write off -> on", "alice", "start dual writes"),
        ("dual_write", "flag dual_write on -> off", "bob", "roll back: settlement latency"),
    ]
    assert json.loads(log[1].details)["version"] == 2


def test_setting_the_current_value_changes_nothing(db, cfg):
    flags = Flags(db, cfg)
    flags.set(READ_PATH, "shadow", actor="alice", reason="shadow reads")
    again = flags.set(READ_PATH, "shadow", actor="alice", reason="rerun")
    assert (again.value, again.version, again.changed_by) == ("shadow", 1, "alice")
    assert [r.action for r in changes(db, cfg)] == ["flag read_path settled_trades -> shadow"]
    assert State(db, cfg).audit_log(1)[0].action == "flag read_path unchanged"


@pytest.mark.parametrize("name, value, actor, reason, message", [
    ("dual_writes", "on", "alice", "why", "unknown flag 'dual_writes'"),
    ("dual_write", "yes", "alice", "why", "flag 'dual_write' cannot be 'yes'; it takes off, on"),
    ("read_path", "new", "alice", "why", "it takes settled_trades, shadow, user_trades"),
    ("dual_write", "on", "", "why", "needs an actor"),
    ("dual_write", "on", "alice", "  ", "needs a reason"),
])
def test_bad_input_is_refused_and_nothing_is_written(db, cfg, name, value, actor, reason, message):
    with pytest.raises(ConfigError, match=message):
        Flags(db, cfg).set(name, value, actor=actor, reason=reason)
    assert flag_rows(db, cfg) == []
    assert State(db, cfg).audit_log() == []


def test_a_stale_expected_value_is_a_conflict_naming_who_changed_it(db, cfg):
    flags = Flags(db, cfg)
    seen = flags.get(READ_PATH)
    flags.set(READ_PATH, "shadow", actor="alice", reason="shadow first")
    with pytest.raises(FlagConflict) as err:
        flags.set(READ_PATH, "user_trades", actor="bob", reason="go", expected=seen)
    assert "found 'shadow' (version 1) set by 'alice'" in str(err.value)
    assert "expected 'settled_trades' (version 0)" in str(err.value)
    assert (flags.get(READ_PATH).value, flags.get(READ_PATH).version) == ("shadow", 1)
    assert [r.actor for r in changes(db, cfg)] == ["alice"]


def test_two_concurrent_changes_exactly_one_wins(db, cfg):
    """Both operators saw the same version; both send their compare-and-set at once."""
    flags = Flags(db, cfg)
    for round_ in range(5):
        seen = flags.get(READ_PATH, serial=True)
        targets = [v for v in ("settled_trades", "shadow", "user_trades") if v != seen.value]
        start = threading.Barrier(2)
        outcome: dict[str, object] = {}

        def change(actor: str, value: str, start=start, outcome=outcome, reason=f"round {round_}",
                   seen=seen) -> None:
            start.wait()
            try:
                outcome[actor] = Flags(db, cfg).set(READ_PATH, value, actor=actor, reason=reason, expected=seen)
            except FlagConflict as exc:
                outcome[actor] = exc

        threads = [threading.Thread(target=change, args=(a, v))
                   for a, v in zip(("alice", "bob"), targets, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [a for a, o in outcome.items() if isinstance(o, Flag)]
        losers = [a for a, o in outcome.items() if isinstance(o, FlagConflict)]
        assert len(winners) == 1 and len(losers) == 1, outcome
        won = outcome[winners[0]]
        stored = flags.get(READ_PATH, serial=True)
        assert (stored.value, stored.version, stored.changed_by) == (won.value, seen.version + 1, winners[0])
        assert f"found {won.value!r} (version {seen.version + 1}) set by {winners[0]!r}" in str(outcome[losers[0]])
    assert len(changes(db, cfg)) == 5   # one audit entry per round: only the winners'
