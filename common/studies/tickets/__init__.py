"""Caron et al. 2020's winning tickets: iterative magnitude pruning with late rewinding, tickets re-trained on
labels from their rewind weights and from a re-initialisation, random-mask controls with and without the
correction for natural sparsity (studies/tickets.py)."""
