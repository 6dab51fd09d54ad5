"""The experiments: one module each, registering itself (see :mod:`experiments.registry`)."""
