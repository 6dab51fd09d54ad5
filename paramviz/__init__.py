"""paramviz: feature visualisation, style transfer and texture synthesis in JAX.

Vocabulary follows Lucid: ``param`` (how an image is represented), ``transforms`` (the
priors), ``objectives`` (what is optimised), ``render`` (the loop), plus ``backbones`` converted
from PyTorch.
"""

__version__ = "0.1.0"
