"""Every error the migration raises, and which of them a retry cannot fix.

A Permanent error fails its task at once (the DAGs' retry policy names this one base): a wrong
setting, a phase out of order, a gate that needs time or a person, a finding. Anything else
(timeouts, an unavailable node, a range that timed out) is retried.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trade_migration.state.flags import Flag

# The driver's own errors that a retry cannot fix: bad CQL, a missing table, no permission.
DRIVER_PERMANENT = ("cassandra.InvalidRequest", "cassandra.protocol.SyntaxException", "cassandra.Unauthorized",
                    "cassandra.AuthenticationFailed")


class Permanent(Exception):
    """A retry cannot fix this: fix the cause (or wait, or ask a person) and run again."""


class ConfigError(Permanent, ValueError):
    """A setting, Param or identifier is invalid."""


class SchemaDriftError(Permanent, RuntimeError):
    """The live table differs from the expected definition; going on would write wrong rows."""


class PhaseOrderError(Permanent, RuntimeError):
    """A phase was started before the phases it builds on completed."""


class FlagConflict(Permanent, RuntimeError):
    """Someone changed the flag since it was read; nothing was written. Re-read and decide again."""

    def __init__(self, name: str, expected: Flag, current: Flag):
        self.name, self.expected, self.current = name, expected, current
        super().__init__(
            f"flag {name!r} changed concurrently: expected {expected.value!r} (version {expected.version}),"
            f" found {current.value!r} (version {current.version}) set by {current.changed_by!r}"
            f" at {current.changed_at} because {current.reason!r}; nothing was changed")


class ReadPathBlocked(Permanent, RuntimeError):
    """read_path may not move to user_trades: the shadow comparison was not clean."""


class GatesFailed(Permanent, RuntimeError):
    """A cleanup gate does not pass; nothing was dropped. Time or a person can help, a retry cannot."""


class NotApproved(Permanent, RuntimeError):
    """The archive or drop was reached without a person's Approve; nothing was archived or dropped."""


class ParityBroken(Permanent, RuntimeError):
    """user_trades differs from settled_trades (and repair did not, or may not, fix it): a retry
    would find the same."""


class TtlRefused(Permanent, RuntimeError):
    """settled_trades carries a TTL and the backfill's ttl_policy is "refuse": a copy without it
    would keep history the source lets expire. Nothing more was written; choose the policy."""


class BackfillIncomplete(Permanent, RuntimeError):
    """The run ended with ranges of its ledger not done: rerun them (the message says which and how);
    retrying the summary would find the same."""


class ConnectionRefused(Permanent, RuntimeError):
    """Every contact point refused the client for a reason a retry cannot change: bad credentials,
    a server certificate the client does not trust, or a plaintext client at a TLS-only node."""


class RangeTimeout(RuntimeError):
    """A page of a range timed out; the range is re-split before its next attempt (retried)."""


class ArchiveError(RuntimeError):
    """The archive does not match the table (or the table is still written); nothing may be dropped."""


class ArchiveStoreError(Permanent, OSError):
    """The archive's object store cannot be used (unreachable, refused credentials, no such bucket);
    raised before anything is written, so nothing was archived, restored or dropped."""


class ArchiveMismatch(Permanent, RuntimeError):
    """An archive differs from its manifest or from settled_trades (a corrupt or missing object, a
    row that differs): it could not restore the table, so nothing may be dropped."""


class RestoreRefused(Permanent, RuntimeError):
    """A restore would write where it should not (a table that is not empty); nothing was written."""
