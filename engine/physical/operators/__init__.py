"""Physical operators, one per module."""
