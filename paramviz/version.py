"""paramviz's version, in a module of its own: the sidecars and run records cite it, and importing
it loads nothing else."""

__version__ = "0.1.0"
