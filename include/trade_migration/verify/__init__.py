"""Phase 5: counts and row parity in both directions, recheck, repair, report."""
