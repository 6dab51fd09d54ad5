"""paramviz: feature visualisation, style transfer and texture synthesis in JAX.

Vocabulary follows Lucid: ``param`` (how an image is represented), ``transforms`` (the
priors), ``objectives`` (what is optimised), ``render`` (the loop), plus ``backbones`` converted
from PyTorch. The three jobs are Python calls that return pictures (:mod:`paramviz.jobs`)::

    import paramviz
    result = paramviz.style_transfer("cat.png", "starry.png", size=256)
    result.save("cat_starry.png")
"""

from typing import Any

from paramviz.version import __version__

__all__ = ["__version__", "style_transfer", "texture", "visualize"]
JOBS = ("style_transfer", "texture", "visualize")


def __getattr__(name: str) -> Any:
    """The jobs load jax, so they are imported on first use: ``import paramviz`` stays light."""
    if name in JOBS:
        from paramviz import jobs

        return getattr(jobs, name)
    raise AttributeError(f"module 'paramviz' has no attribute {name!r}")
