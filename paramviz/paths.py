"""Where paramviz keeps downloaded and converted weights.

``$PARAMVIZ_HOME`` wins; otherwise ``$XDG_CACHE_HOME/paramviz`` or ``~/.cache/paramviz``.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache root (not created here)."""
    if env := os.environ.get("PARAMVIZ_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "paramviz"


def downloads_dir() -> Path:
    """Original checkpoints exactly as published (``.pth``, ``.pt``, ``.ckpt``)."""
    return home() / "downloads"


def converted_dir() -> Path:
    """Converted checkpoints (``NAME.safetensors``), the only form rendering reads."""
    return home() / "converted"


def trained_dir() -> Path:
    """Networks trained by ``paramviz train`` (never committed)."""
    return home() / "trained"


def compile_cache_dir() -> Path:
    """JAX's persistent compilation cache."""
    return home() / "jax-cache"
