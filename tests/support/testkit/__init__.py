"""Test and benchmark support for trade_migration: generated trades, live traffic, planted
ledgers and the statements only they need. Not part of the product; installed editable by
`make venv` for tests/, bench/ and scripts/."""
