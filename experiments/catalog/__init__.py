"""The experiments: one module each, registering itself (see
:mod:`paramviz.experiments.registry`)."""
