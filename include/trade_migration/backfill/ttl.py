"""What the backfill does with settled_trades rows that expire (a TTL): the ttl_policy option.

A user_trades row copied without its source's TTL would outlive the source: the gateway would
keep showing a trade that settled_trades has let go. So the backfill either refuses ("refuse",
the default: a person decides what history should do) or gives both of a trade's rows the
seconds its source row has left ("preserve": they expire with it, at most a second or two later,
as the TTL is read in whole seconds before the write). A row whose columns expire at different
times (later writes with other TTLs, or none) cannot be kept so by one TTL: it is refused under
either policy, for a person to settle at the source.
"""
from __future__ import annotations

from cassandra.cluster import Session

from trade_migration.core.errors import ConfigError, TtlRefused

REFUSE, PRESERVE = "refuse", "preserve"
TTL_POLICIES = (REFUSE, PRESERVE)
HOW_TO_CHOOSE = ("set the backfill's ttl_policy option to 'preserve' (the DAG's Param, or --ttl-policy preserve)"
                 " to give the copies the seconds their source has left")


def check_policy(policy: str) -> str:
    if policy not in TTL_POLICIES:
        raise ConfigError(f"ttl_policy must be one of {', '.join(TTL_POLICIES)}; got {policy!r}")
    return policy


def check_table(session: Session, keyspace: str, policy: str) -> None:
    """At planning: a settled_trades with a default TTL makes every row expire, so "refuse" fails at once."""
    check_policy(policy)
    session.cluster.refresh_table_metadata(keyspace, "settled_trades")
    table = session.cluster.metadata.keyspaces[keyspace].tables["settled_trades"]
    default_ttl = table.options.get("default_time_to_live") or 0
    if default_ttl > 0 and policy == REFUSE:
        raise TtlRefused(f"{keyspace}.settled_trades has default_time_to_live {default_ttl}s, so its rows expire,"
                         f" and ttl_policy is 'refuse'; nothing was planned. To copy them, {HOW_TO_CHOOSE}")


def refused(trade_id: int, ttl: int) -> TtlRefused:
    """A row with a TTL met under "refuse": the error that fails its range before the row is written."""
    return TtlRefused(f"trade {trade_id} in settled_trades expires in {ttl}s (it has a TTL) and ttl_policy is"
                      f" 'refuse'; it was not copied and the range stops here. To copy it, {HOW_TO_CHOOSE}")


def mixed(trade_id: int) -> TtlRefused:
    """A row whose columns expire at different times, met under "preserve"."""
    return TtlRefused(f"trade {trade_id} in settled_trades has columns that expire at different times (or some"
                      f" never); one TTL on its user_trades rows cannot keep it as the source does, so it was not"
                      f" copied and the range stops here (ttl_policy 'preserve'). Give its columns one TTL, or"
                      f" none, at the source and rerun")
