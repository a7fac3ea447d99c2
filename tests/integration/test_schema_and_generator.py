"""schema/ applies twice without harm; the generator writes exactly what it promises."""
import re
from collections import Counter
from pathlib import Path

from conftest import load_trades
from trade_migration import generator, schema, statements, tokens
from trade_migration.config import STATE_TABLES
from trade_migration.symbols import load_symbol_ids
from trade_migration.trades import Reject, convert

CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "contract"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_legacy_and_user_trades_files_are_the_contract():
    for ours, theirs in (("01_legacy.cql", "legacy.cql"), ("02_user_trades.cql", "user_trades.cql")):
        expect = (CONTRACT / theirs).read_text().replace("trading.", "${keyspace}.")
        assert _norm((schema.SCHEMA_DIR / ours).read_text()) == _norm(expect)


def test_schema_applies_twice_and_user_trades_is_verified(cluster_session, cfg):
    first = schema.apply(cluster_session, cfg)
    second = schema.apply(cluster_session, cfg)
    assert first == second == 12
    assert schema.verify_user_trades(cluster_session, cfg) == schema.expected_user_trades()
    tables = set(cluster_session.cluster.metadata.keyspaces[cfg.keyspace].tables)
    assert tables == {"symbols", "settled_trades", "user_trades", *STATE_TABLES}


def test_generator_counts_and_reject_mix_are_exact(db, cfg):
    n = 6000
    plan = load_trades(db, cfg, n, seed=11)
    count = db.prepare(statements.count_settled_range(cfg.keyspace))
    total = sum(db.execute(count, r).one()[0] for r in tokens.split_ring([tokens.MIN_TOKEN], 8))
    assert total == n == plan.trades
    ids = load_symbol_ids(db, cfg.keyspace)
    assert len(ids) == len(generator.symbols())
    rows = db.execute(f"SELECT {', '.join(statements.SETTLED_COLUMNS)} FROM {cfg.keyspace}.settled_trades")
    got = Counter(o.code for o in (convert(tuple(r), ids) for r in rows) if isinstance(o, Reject))
    assert got == plan.rejects == generator.expected_rejects(n)
    assert sum(got.values()) == 24
