"""Phase 3: the gateway's read paths, the shadow comparison between them, their latency."""
