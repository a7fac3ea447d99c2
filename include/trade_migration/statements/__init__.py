"""Every CQL statement the migration runs, one module per table (DDL lives in schema/).

Only validated identifiers (core.config.identifier) are formatted in; values are always bound.
"""
