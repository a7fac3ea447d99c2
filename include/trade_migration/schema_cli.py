"""`python -m trade_migration.schema_cli`: apply schema/ and verify user_trades (docker-compose's
init step, and an on-call check). Connection from TM_* variables."""
from __future__ import annotations

from trade_migration.core.config import Config
from trade_migration.core.session import connect
from trade_migration.create_table.schema import apply, verify_user_trades


def main() -> None:
    config = Config.from_env()
    session = connect(config)
    try:
        count = apply(session, config)
        verify_user_trades(session, config)
        print(f"schema applied ({count} statements) to keyspace {config.keyspace}; user_trades verified")
    finally:
        session.cluster.shutdown()


if __name__ == "__main__":
    main()
