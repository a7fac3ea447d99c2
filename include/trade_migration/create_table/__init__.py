"""Phase 1: apply schema/ and prove the live user_trades is the contract's table."""
