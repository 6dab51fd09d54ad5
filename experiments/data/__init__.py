"""Hand-written readers for the on-disk formats behind :mod:`paramviz.experiments.datasets`."""
