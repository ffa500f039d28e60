"""Models of the gateways app (filled in by its own issue)."""
