"""Phase 2: dual writes: the reference settlement writer and the evidence that its writes land."""
