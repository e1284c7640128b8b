"""memlab: the edge of memorization in diffusion models, reproduced."""
