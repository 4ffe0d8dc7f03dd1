"""The offline data set: scikit-learn's 8 x 8 handwritten digits, resized. No download needed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["load_colour_digits", "load_digits_images", "resize_images"]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, h, w) images to (N, size, size), float32, values clipped to [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    if (h, w) == (size, size):
        return images.copy()
    zoomed = ndimage.zoom(images, (1, size / h, size / w), order=1, mode="nearest", grid_mode=True)
    return np.clip(zoomed, 0.0, 1.0).astype(np.float32)


def load_digits_images(size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, size, size) in [0, 1], labels (N,)) from scikit-learn's digits (1797 images)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    return resize_images(images, size), digits.target.astype(np.int64)


def load_colour_digits(size: int = 8, tints: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Colour digits for multi-colour models: each digit drawn ``tints`` times, each time in a random
    fully saturated hue. (images (N * tints, 3, size, size) in [0, 1], RGB order; labels)."""
    import colorsys

    images, labels = load_digits_images(size)
    rng = np.random.default_rng(seed)
    hues = rng.uniform(0.0, 1.0, len(images) * tints)
    colours = np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in hues], dtype=np.float32)
    tinted = np.repeat(images, tints, axis=0)[:, None] * colours[:, :, None, None]
    return tinted.astype(np.float32), np.repeat(labels, tints)
