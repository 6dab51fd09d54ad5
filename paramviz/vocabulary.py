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

TRANSFORM_PRESETS = ("none", "standard", "mild")
"""The names of ``transforms.PRESETS`` (a test keeps them equal)."""
