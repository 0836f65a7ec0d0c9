"""Metrics as pure functions, arrays in and arrays out: PIEs, Q-Score, k-NN probes, prediction depth, overlaps."""
