"""Checkpoint registry, download, safe loading and PyTorch -> Flax conversion.

The only package that imports torch, and only when a .pth/.pt/.ckpt file is read.
"""
