"""A lab's own images to train on (``optgen train --data PATH``), read whole and checked.

PATH is one of:
- a folder of images (PNG, JPEG, BMP, TIFF; read with OpenCV), all of one size, optionally one
  sub-folder per class (the sub-folders' names, sorted, are the classes 0, 1, ...);
- a ``.npy`` array (N, h, w), (N, h, w, 3) or (N, 3, h, w), or a ``.npz`` holding ``images`` (or
  ``x``) and optionally ``labels`` (or ``y``): integers, one per image;
- MNIST-format IDX files, gzipped or not: the images file (``*images*idx3*``), with the labels
  file beside it found by its name (``images`` -> ``labels``, ``idx3`` -> ``idx1``) when there is
  one; or a folder holding such a pair.
Values: 8- or 16-bit integers are scaled to [0, 1]; floats must already lie in [0, 1].

Nothing is skipped: an unreadable file, an empty folder, mixed sizes, values out of range or labels
that do not match stop with DataError naming the file and what was expected. The data set's
identity (name, count, SHA-256 of the pixels and labels as read) goes into the model file.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optgen.drivers.errors import OptgenError

__all__ = ["DataError", "ImageData", "load_image_data"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MAX_IMAGES = 1_000_000


class DataError(OptgenError, ValueError):
    """Training data that cannot be used as it is; the message names the file."""


@dataclass
class ImageData:
    """Images (N, channels, h, w) float32 in [0, 1], their labels (N,) int64 or None."""

    images: np.ndarray
    labels: np.ndarray | None
    name: str
    class_names: list[str] = field(default_factory=list)

    @property
    def classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def sha256(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels).tobytes())
        return digest.hexdigest()

    def record(self) -> dict:
        """What the model file keeps of the data it learned from."""
        return {"name": self.name, "count": int(len(self.images)), "sha256": self.sha256(),
                "size": [int(v) for v in self.images.shape[2:]], "channels": self.channels,
                "classes": self.classes, "class_names": list(self.class_names)}

    def grey(self) -> np.ndarray:
        """(N, h, w): colour images as their luminance (ITU-R BT.601 weights), grey as they are."""
        if self.channels == 1:
            return self.images[:, 0]
        r, g, b = self.images[:, 0], self.images[:, 1], self.images[:, 2]
        return (0.299 * r + 0.587 * g + 0.114 * b).astype(np.float32)


def load_image_data(path: str | Path) -> ImageData:
    """Read the training data at ``path`` (see the module's docstring); DataError on anything wrong."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"--data {path}: no such file or folder")
    if path.is_dir():
        idx = sorted(p for p in path.iterdir() if p.is_file() and _is_idx_images(p))
        if idx:
            return _from_idx(idx[0])
        return _from_folder(path)
    if path.suffix == ".npy":
        return _from_arrays(path, _load_npy(path), None)
    if path.suffix == ".npz":
        return _from_npz(path)
    if _is_idx_images(path) or _is_idx(path):
        return _from_idx(path)
    raise DataError(f"--data {path}: expected a folder of images, a .npy/.npz array or MNIST-format IDX files")


# --- arrays ---------------------------------------------------------------------------------
def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None


def _from_npz(path: Path) -> ImageData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            image_key = "images" if "images" in keys else "x" if "x" in keys else None
            if image_key is None:
                raise DataError(f"{path}: holds {sorted(keys)}; expected an array named 'images' (or 'x') and "
                                f"optionally 'labels' (or 'y')")
            label_key = "labels" if "labels" in keys else "y" if "y" in keys else None
            images = archive[image_key]
            labels = archive[label_key] if label_key is not None else None
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    return _from_arrays(path, images, labels)


def _from_arrays(path: Path, images: np.ndarray, labels: np.ndarray | None,
                 class_names: list[str] | None = None) -> ImageData:
    images = _as_nchw(path, images)
    images = _unit_range(path, images)
    labels, names = _checked_labels(path, labels, len(images), class_names)
    return ImageData(images, labels, path.name, names)


def _as_nchw(path: Path, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "uif":
        raise DataError(f"{path}: images of type {a.dtype}; expected integers or floats")
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (3, 4) and a.shape[1] not in (1, 3):
        a = np.moveaxis(a[..., :3], -1, 1)
    elif not (a.ndim == 4 and a.shape[1] in (1, 3)):
        raise DataError(f"{path}: images of shape {a.shape}; expected (N, h, w), (N, h, w, 3) or (N, 3, h, w)")
    if len(a) == 0:
        raise DataError(f"{path}: holds no images")
    if len(a) > MAX_IMAGES:
        raise DataError(f"{path}: {len(a)} images; at most {MAX_IMAGES} are read")
    if min(a.shape[2:]) < 4:
        raise DataError(f"{path}: images of {a.shape[2]} x {a.shape[3]} pixels; expected at least 4 x 4")
    return a


def _unit_range(path: Path, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "ui":
        top = 255.0 if a.dtype.itemsize == 1 or int(a.max()) <= 255 else 65535.0
        if a.min() < 0 or a.max() > top:
            raise DataError(f"{path}: integer values from {a.min()} to {a.max()}; expected 0 to {top:g}")
        return (a.astype(np.float32) / np.float32(top)).astype(np.float32)
    if not np.isfinite(a).all():
        raise DataError(f"{path}: values that are not finite (NaN or infinity)")
    if a.min() < 0.0 or a.max() > 1.0:
        raise DataError(f"{path}: float values from {a.min():g} to {a.max():g}; expected 0 to 1 (or 8-bit integers)")
    return a.astype(np.float32)


def _checked_labels(path: Path, labels, count: int, names: list[str] | None) -> tuple[np.ndarray | None, list[str]]:
    if labels is None:
        return None, []
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "ui":
        raise DataError(f"{path}: labels of shape {labels.shape} and type {labels.dtype}; expected one whole "
                        f"number per image")
    if len(labels) != count:
        raise DataError(f"{path}: {len(labels)} labels for {count} images; expected one label per image")
    if labels.min() < 0:
        raise DataError(f"{path}: a negative label ({labels.min()}); expected 0, 1, 2, ...")
    values = np.unique(labels)
    if len(values) < 2:
        raise DataError(f"{path}: every image has label {values[0]}; a class-conditional model needs two classes "
                        f"or more (leave the labels out to train without classes)")
    if names is None:
        names = [str(int(v)) for v in range(int(values.max()) + 1)]
    return labels.astype(np.int64), names


# --- a folder of image files ---------------------------------------------------------------
def _from_folder(folder: Path) -> ImageData:
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = _image_files(folder)
    if subfolders and loose:
        raise DataError(f"{folder}: holds both images ({loose[0].name}, ...) and sub-folders ({subfolders[0].name}, "
                        f"...); expected images only, or one sub-folder of images per class")
    if subfolders:
        files, labels = [], []
        for k, sub in enumerate(subfolders):
            found = _image_files(sub)
            if not found:
                raise DataError(f"{sub}: a class folder without images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
            labels += [k] * len(found)
        names = [sub.name for sub in subfolders]
    else:
        files, labels, names = loose, None, None
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) and no MNIST IDX files here")
    images = _read_images(files)
    return _from_arrays(folder, images, None if labels is None else np.array(labels), names)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_images(files: list[Path]) -> np.ndarray:
    import cv2

    first = None
    out = []
    colour = False
    for f in files:
        image = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"{f}: not a readable image")
        if image.ndim == 3:
            image = image[..., :3][..., ::-1] if image.shape[2] >= 3 else image[..., 0]   # BGR(A) -> RGB
        if image.ndim == 3:
            colour = True
        if first is None:
            first = (f, image.shape[:2], image.dtype)
        elif image.shape[:2] != first[1]:
            raise DataError(f"{f}: {image.shape[1]} x {image.shape[0]} pixels; {first[0].name} is "
                            f"{first[1][1]} x {first[1][0]}: expected one size for every image")
        elif image.dtype != first[2]:
            raise DataError(f"{f}: {image.dtype} pixels; {first[0].name} has {first[2]}: expected one bit depth")
        out.append(image)
    if colour:
        out = [np.repeat(i[..., None], 3, axis=2) if i.ndim == 2 else i for i in out]
    return np.stack(out)


# --- MNIST-format IDX ------------------------------------------------------------------------
def _is_idx(path: Path) -> bool:
    name = path.name.lower()
    return "idx" in name and (name.endswith("ubyte") or name.endswith(".gz") or name.endswith(".idx"))


def _is_idx_images(path: Path) -> bool:
    return _is_idx(path) and "idx3" in path.name.lower()


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (expected the magic 0x00 0x00 0x08 ...)")
    dims = raw[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path}: the header says {shape} values; the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _from_idx(images_path: Path) -> ImageData:
    if not _is_idx_images(images_path):
        raise DataError(f"{images_path}: an IDX file of labels or of other data; name the images file "
                        f"(*images-idx3-ubyte*)")
    images = _read_idx(images_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: IDX data of shape {images.shape}; expected (N, h, w) images")
    name = images_path.name
    labels_path = images_path.with_name(name.replace("images", "labels").replace("idx3", "idx1"))
    labels = _read_idx(labels_path) if labels_path != images_path and labels_path.is_file() else None
    if labels is not None and labels.ndim != 1:
        raise DataError(f"{labels_path}: IDX labels of shape {labels.shape}; expected one per image")
    data = _from_arrays(images_path, images, labels)
    if labels is not None and data.labels is not None and len(data.labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
    return data
