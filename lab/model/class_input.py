"""The class as the encoder's input: one-hot beside the noise (numpy; inference and model files).

A class-conditional teacher reads a sample's class from its noise, the decile of the first
(standard normal) component (decision 0004), and the first models' encoders had to read it there
too: one scalar, whose middle classes span only +-0.13 of it, carrying a ten-way choice. A model
trained with ``info["class_input"] == "one-hot"`` also takes the class as ``classes`` one-hot
inputs after the noise values, computed from the same component, so the noise and what the model
generates for it are unchanged (issue 24: a lab's own shapes, the middle classes were the ones that
bled into their neighbours).
"""

from __future__ import annotations

import numpy as np
import scipy.special

__all__ = ["ONE_HOT", "class_inputs", "class_of_noise", "with_class_inputs"]

ONE_HOT = "one-hot"


def class_of_noise(noise: np.ndarray, classes: int) -> np.ndarray:
    """The class each noise vector (B, values) asks for: the decile (for ten classes) of its first component."""
    u = scipy.special.ndtr(np.asarray(noise, np.float64)[:, 0])
    return np.clip((u * classes).astype(np.int64), 0, classes - 1)


def class_inputs(info: dict | None) -> int:
    """How many inputs beside the noise a model's encoder takes: its classes where it was trained with
    one-hot class inputs, else 0. ValueError for a ``class_input`` it cannot honour."""
    info = info or {}
    kind = info.get("class_input")
    if kind is None:
        return 0
    classes = info.get("classes")
    if kind != ONE_HOT or type(classes) is not int or not 2 <= classes <= 1000:
        raise ValueError(f"class_input {kind!r} with classes {classes!r}: expected {ONE_HOT!r} with 2 to 1000 classes")
    return classes


def with_class_inputs(noise: np.ndarray, classes: int) -> np.ndarray:
    """(B, values + classes) float32: ``noise`` followed by the one-hot class it asks for."""
    noise = np.asarray(noise, np.float32)
    one_hot = np.zeros((len(noise), classes), np.float32)
    one_hot[np.arange(len(noise)), class_of_noise(noise, classes)] = 1.0
    return np.concatenate([noise, one_hot], axis=1)
