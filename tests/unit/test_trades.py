from datetime import UTC, datetime

import pytest

from trade_migration.core.convert import REJECT_REASONS, Reject, convert, raw_values
from trade_migration.core.model import SETTLED_REGULAR, USER_TRADE_REGULAR, SettledTrade
from trade_migration.statements.settled_trades import ScannedTrade, decode_scanned_trade
from trade_migration.statements.user_trades import ScannedUserTrade, decode_timed_user_trade

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
M = datetime(2026, 1, 2, 3, 4, 4, tzinfo=UTC)
SYMBOLS = {"BTC_USDT": 1}


def trade(**over):
    base = dict(trade_id=7, output_seq=3, symbol="BTC_USDT", price=6_700_000, quantity=25,
                buyer_user_id=100, seller_user_id=200, buyer_order_id=11, seller_order_id=22,
                taker_side="SELL", buyer_fee=5, seller_fee=6, matched_at=M, settled_at=T)
    base.update(over)
    return SettledTrade(**base)


def test_contract_mapping_buyer_and_seller_rows():
    buyer, seller = convert(trade(), SYMBOLS)
    assert buyer == (100, 1, T, 7, "BUY", 6_700_000, 25, 5, 11, 200, False, M, 3)
    assert seller == (200, 1, T, 7, "SELL", 6_700_000, 25, 6, 22, 100, True, M, 3)


def test_self_trade_gives_two_rows_for_the_same_user():
    buyer, seller = convert(trade(seller_user_id=100, taker_side="BUY"), SYMBOLS)
    assert (buyer[0], buyer[4], buyer[10]) == (100, "BUY", True)
    assert (seller[0], seller[4], seller[10]) == (100, "SELL", False)


def test_nullable_columns_are_copied_as_null():
    buyer, seller = convert(trade(buyer_fee=None, seller_order_id=None, matched_at=None), SYMBOLS)
    assert buyer[7] is None and seller[8] is None and buyer[11] is None and seller[11] is None


@pytest.mark.parametrize("over,code", [
    ({"symbol": "NOPE"}, "unknown_symbol"), ({"symbol": None}, "unknown_symbol"),
    ({"buyer_user_id": None}, "null_buyer_user_id"), ({"seller_user_id": None}, "null_seller_user_id"),
    ({"settled_at": None}, "null_settled_at"), ({"price": None}, "bad_price"), ({"price": 0}, "bad_price"),
    ({"price": -1}, "bad_price"), ({"quantity": None}, "bad_quantity"), ({"quantity": 0}, "bad_quantity"),
    ({"taker_side": "buy"}, "bad_taker_side"), ({"taker_side": None}, "bad_taker_side"),
])
def test_every_reject_reason(over, code):
    out = convert(trade(**over), SYMBOLS)
    assert isinstance(out, Reject) and out.code == code and out.reason.startswith(code + ": ")
    assert code in REJECT_REASONS


def test_extreme_values_convert_unchanged():
    big = 2**63 - 1
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    buyer, _ = convert(trade(trade_id=big, price=big, quantity=big, buyer_user_id=-(2**63), settled_at=epoch), SYMBOLS)
    assert buyer[:7] == (-(2**63), 1, epoch, big, "BUY", big, big)


def test_raw_values_keep_everything_as_text():
    raw = raw_values(trade(price=None))
    assert raw["price"] == "null" and raw["trade_id"] == "7" and len(raw) == 14


def test_rows_are_named_and_keyed_by_the_primary_key():
    buyer, seller = convert(trade(), SYMBOLS)
    assert (buyer.user_id, buyer.counterparty_user_id, seller.fee) == (100, 200, 6)
    assert buyer.key == (100, 1, T, 7, "BUY") and seller.key == (200, 1, T, 7, "SELL")


def test_scanned_rows_decode_by_the_statements_layout():
    """A scanned row is the token, the row's columns, then the write times and the TTLs of its regular columns."""
    t = trade()
    stamps = (None,) * (len(SETTLED_REGULAR) - 2) + (5, 9)
    ttls = (None,) * (len(SETTLED_REGULAR) - 2) + (300, 120)
    nothing = (None,) * len(SETTLED_REGULAR)
    assert decode_scanned_trade((42, *t, *stamps, *ttls)) == ScannedTrade(42, t, 9, 120)
    assert decode_scanned_trade((42, *t, *stamps, *nothing)) == ScannedTrade(42, t, 9, None)
    assert decode_scanned_trade((42, *t, *nothing, *nothing)).written == 0
    buyer, _ = convert(t, SYMBOLS)
    stamps = (3,) + (None,) * (len(USER_TRADE_REGULAR) - 1)
    assert decode_timed_user_trade((-8, *buyer, *stamps)) == ScannedUserTrade(-8, buyer, 3)
