"""Consumption: batches and tensors from a stream of block references (iteration, local
shuffle, torch batches, iterator timings)."""
