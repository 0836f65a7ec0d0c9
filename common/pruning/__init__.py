"""Pruning: one stacked `Masks` type, registries of criteria (which entries go) and pools (which tensors are
ranked), the GMP schedule, and the single-model API."""
