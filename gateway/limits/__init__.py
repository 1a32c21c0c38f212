"""Rate limits and budgets of client keys and teams (SPEC §12)."""
