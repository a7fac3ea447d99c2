"""What user_trades and rejected_trades must hold, computed from settled_trades independently of
the product (the contract's mapping and reject rules written out again here, not trades.convert).

The same approach as tests/integration/test_backfill.py, shared by the fault and bad-input tests and
the live-day acceptance run (bench/live_day.py).
Reads use the session's default consistency (QUORUM on the three-node ring).
"""
from __future__ import annotations

from datetime import datetime

SETTLED = ("trade_id, output_seq, symbol, price, quantity, buyer_user_id, seller_user_id, buyer_order_id,"
           " seller_order_id, taker_side, buyer_fee, seller_fee, matched_at, settled_at")
SETTLED_NAMES = tuple(c.strip() for c in SETTLED.split(","))


def reject_code(t, symbols: dict) -> str | None:
    """The contract's reject rules, in the order they are listed there."""
    if t.symbol not in symbols:
        return "unknown_symbol"
    if t.buyer_user_id is None:
        return "null_buyer_user_id"
    if t.seller_user_id is None:
        return "null_seller_user_id"
    if t.settled_at is None:
        return "null_settled_at"
    if t.price is None or t.price <= 0:
        return "bad_price"
    if t.quantity is None or t.quantity <= 0:
        return "bad_quantity"
    if t.taker_side not in ("BUY", "SELL"):
        return "bad_taker_side"
    return None


def symbol_map(session, ks: str) -> dict:
    return {r.symbol: r.symbol_id for r in session.execute(f"SELECT symbol, symbol_id FROM {ks}.symbols")
            if r.symbol_id is not None}


def source_rows(session, ks: str) -> list:
    """Every settled_trades row with the write time of its price (the generator writes a row at once)."""
    return list(session.execute(f"SELECT {SETTLED}, WRITETIME(price) AS wt, WRITETIME(taker_side) AS wt2"
                                f" FROM {ks}.settled_trades"))


def expected_rows(trade, symbol_id: int) -> dict:
    """The two user_trades rows of a convertible trade: key -> values (with the source write time)."""
    t = trade
    wt = max(w for w in (t.wt, t.wt2) if w is not None)
    out = {}
    for user, side, fee, order, other in ((t.buyer_user_id, "BUY", t.buyer_fee, t.buyer_order_id, t.seller_user_id),
                                          (t.seller_user_id, "SELL", t.seller_fee, t.seller_order_id, t.buyer_user_id)):
        out[(user, symbol_id, t.settled_at, t.trade_id, side)] = (
            t.price, t.quantity, fee, order, other, t.taker_side == side, t.matched_at, t.output_seq, wt)
    return out


def expectation(session, ks: str, *, symbols: dict | None = None):
    """(rows by key, reject code by trade_id), straight from the contract's table."""
    symbols = symbol_map(session, ks) if symbols is None else symbols
    rows, rejects = {}, {}
    for t in source_rows(session, ks):
        code = reject_code(t, symbols)
        if code:
            rejects[t.trade_id] = code
        else:
            rows.update(expected_rows(t, symbols[t.symbol]))
    return rows, rejects


def actual(session, ks: str):
    q = (f"SELECT user_id, symbol_id, settled_at, trade_id, side, price, quantity, fee, order_id,"
         f" counterparty_user_id, is_taker, matched_at, output_seq, WRITETIME(price) AS wt FROM {ks}.user_trades")
    rows = {tuple(r[:5]): tuple(r[5:]) for r in session.execute(q)}
    rejects = {r.trade_id: r.reason.split(":")[0]
               for r in session.execute(f"SELECT trade_id, reason FROM {ks}.rejected_trades")}
    return rows, rejects


def assert_exact(session, ks: str):
    """Every expected row with every value and the source write time, nothing extra, every reject."""
    expect_rows, expect_rejects = expectation(session, ks)
    got_rows, got_rejects = actual(session, ks)
    assert len(got_rows) == len(expect_rows)
    missing = expect_rows.keys() - got_rows.keys()
    extra = got_rows.keys() - expect_rows.keys()
    assert not missing and not extra, (f"{len(missing)} missing (e.g. {sorted(missing, key=str)[:3]}),"
                                       f" {len(extra)} extra (e.g. {sorted(extra, key=str)[:3]})")
    wrong = {k: (expect_rows[k], got_rows[k]) for k in expect_rows if expect_rows[k] != got_rows[k]}
    assert not wrong, f"{len(wrong)} rows differ, e.g. {list(wrong.items())[:3]}"
    assert got_rejects == expect_rejects
    return expect_rows, expect_rejects


def raw_round_trips(raw: dict, trade) -> list[str]:
    """Columns whose raw text in rejected_trades does not give back the source value (empty: all do)."""
    bad = []
    for name in SETTLED_NAMES:
        value, text = getattr(trade, name), raw.get(name)
        if value is None:
            ok = text == "null"
        elif isinstance(value, bool):
            ok = text == str(value)
        elif isinstance(value, int):
            ok = text is not None and int(text) == value
        elif isinstance(value, datetime):
            ok = text is not None and datetime.fromisoformat(text).replace(tzinfo=None) == value
        else:
            ok = text == value
        if not ok:
            bad.append(f"{name}: {value!r} stored as {text!r}")
    return bad
