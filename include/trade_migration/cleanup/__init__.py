"""Phase 6: the gates, the approval, the archive and the drop of settled_trades."""
