"""A cleanup archive written back into a table: `python -m trade_migration.restore` and the
user_trades_restore DAG (run.restore_archive does the work)."""
