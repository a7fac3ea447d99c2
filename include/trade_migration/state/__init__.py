"""The migration's state in the database: phase records and the audit log, the flags, the backfill ledger."""
