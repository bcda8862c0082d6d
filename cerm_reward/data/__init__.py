"""Benchmark and preference data: evaluation items, their loaders, and the one preference-pair type
that judge training reads."""
