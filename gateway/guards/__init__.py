"""Output guards on answers, and the review queue of flagged and held ones."""
