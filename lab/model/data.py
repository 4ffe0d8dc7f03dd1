"""The offline data set: scikit-learn's 8 x 8 handwritten digits, resized. No download needed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["load_digits_images", "resize_images"]


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
