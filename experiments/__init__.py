"""Reproductions of the published comparisons of image priors against robust weights."""
