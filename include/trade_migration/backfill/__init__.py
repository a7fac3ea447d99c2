"""Phase 4: copy history by token range: plan, copy with checkpoints, summarize."""
