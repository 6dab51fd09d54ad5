"""Differentiable, jit-compatible image transforms (the priors); depends on jax only."""
