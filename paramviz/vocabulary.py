"""The names a render request is spelled in, kept free of heavy imports so that the command
line builds its parser (and ``--help``) without loading jax."""

PARAMETERISATIONS = ("pixel", "fourier", "maco")
"""Image parameterisations: pixels, Lucid's decorrelated Fourier spectrum, MACO's phase."""

OPTIMIZERS = ("adam", "lbfgs")

STYLE_LOSSES = ("l1", "mse")
"""Gram distances: Lucid's mean absolute difference, or Gatys' mean square."""

SMOOTHING = ("none", "channel", "tensor")
"""SWAG's activation smoothing (Wang, Li & Vasconcelos, CVPR 2021), applied before the losses:
``channel`` is a softmax across channels at every position (PyTorch's ``nn.Softmax2d``, as in the
authors' code), ``tensor`` a softmax over all values of an image's layer (the paper's formula)."""

SEED_LIMIT = 2**32
"""Seeds are below this: JAX keys hold 32 bits of a seed (64-bit mode is off), so larger seeds
would collide silently."""

MAX_IMAGE_PIXELS = 89_478_485
"""PIL's own decompression-bomb limit (1024 * 1024 * 1024 // 4 // 3)."""

TRANSFORM_PRESETS = ("none", "standard", "mild")
"""The names of ``paramviz.transforms.PRESETS`` (a test keeps them equal)."""

JOB_DEFAULTS = {
    "style": {"init": "content", "transforms": "none", "steps": 300},
    "texture": {"init": "noise", "transforms": "none", "steps": 300},
    "visualize": {"init": "noise", "transforms": "standard", "steps": 512},
}
"""Where each job's settings differ from the settings' own defaults: the command line's flags
and the Python calls (:mod:`paramviz.jobs`) both take them from here."""
