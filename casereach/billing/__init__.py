"""What messages cost: the dated fee table, conversion rates, and pricing (ADR 0013)."""
