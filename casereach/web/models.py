"""Models of the web app (filled in by its own issue)."""
