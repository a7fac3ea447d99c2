"""settled_trades archived to object storage before the drop, checked against it, read back."""
