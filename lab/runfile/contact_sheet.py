"""Contact sheets: a grid of generated images written as one PNG a person can look at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["write_contact_sheet"]


LABEL_PX = 11      # the band above each tile that holds its label (frame number)


def write_contact_sheet(path: Path, images: np.ndarray, columns: int = 8, scale: int = 4, gap: int = 2,
                        max_images: int = 64, labels: list[str] | None = None) -> Path:
    """Write up to ``max_images`` images as an 8-bit PNG grid; each image scaled to its own range.

    ``images``: (N, h, w) grey, or (N, h, w, 3) colour in RGB order (one range for all channels).
    ``labels``: a short text above each tile (a run's sheet: the frame numbers), one per image.
    """
    images = np.asarray(images, dtype=np.float32)[:max_images]
    colour = images.ndim == 4 and images.shape[-1] == 3
    if not (images.ndim == 3 or colour) or images.shape[0] == 0:
        raise ValueError(f"contact sheet: expected a non-empty (N, h, w) or (N, h, w, 3) stack, "
                         f"got shape {images.shape}")
    if labels is not None:
        labels = [str(label) for label in labels][:max_images]
        if len(labels) != len(images):
            raise ValueError(f"contact sheet: {len(labels)} labels for {len(images)} images; expected one each")
    band = LABEL_PX if labels is not None else 0
    n, h, w = images.shape[:3]
    columns = min(columns, n)
    rows = -(-n // columns)
    th, tw = h * scale, w * scale
    sheet = np.full((rows * (band + th + gap) + gap, columns * (tw + gap) + gap) + ((3,) if colour else ()), 40,
                    dtype=np.uint8)
    for k, img in enumerate(images):
        lo, hi = float(np.min(img)), float(np.max(img))
        norm = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        tile = cv2.resize((norm * 255).astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST)
        if colour:
            tile = tile[..., ::-1]  # OpenCV writes BGR
        r, c = divmod(k, columns)
        y, x = gap + r * (band + th + gap) + band, gap + c * (tw + gap)
        sheet[y:y + th, x:x + tw] = tile
        if labels is not None:
            cv2.putText(sheet, labels[k], (x, y - 2), cv2.FONT_HERSHEY_PLAIN, 0.7,
                        (230, 230, 230) if colour else 230, 1, cv2.LINE_AA)
    path = Path(path)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"{path}: could not write the contact sheet PNG")
    return path
