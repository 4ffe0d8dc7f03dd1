"""A model file as a zip archive of .npy arrays, read without trusting it: the directory, each member's size and compression, each array's .npy header and data, the JSON header; sizes are checked before anything is allocated."""

from __future__ import annotations

import contextlib
import io
import json
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO, NoReturn

import numpy as np

from optgen.lab.model.errors import ModelFileError

# Limits: generous above the shipped models (digits-rgb-v3: an 11 MB file, 14 MB of arrays in 27
# members, 9.5 M encoder weights of |w| < 0.6, compressed at most 1.2 : 1).


MAX_TOTAL_BYTES = 512 * 2**20        # all members, uncompressed


MAX_MEMBER_BYTES = 256 * 2**20       # one member, uncompressed


MAX_MEMBERS = 256


MAX_DIRECTORY_BYTES = 2**20          # the zip's central directory


MAX_HEADER_BYTES = 2**20             # the JSON header member


MAX_NPY_HEADER_BYTES = 10_000        # an array's .npy header (numpy's own limit)


MAX_RATIO = 100.0                    # uncompressed : compressed, for members (and the whole) above ...


RATIO_FROM_BYTES = 2**20             # ... this size uncompressed


CHUNK = 4 * 2**20


# What reading a zip archive or its members may raise besides ModelFileError.
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error,
                NotImplementedError, RuntimeError, ValueError, UnicodeError, OverflowError, KeyError, IndexError)


@dataclass(frozen=True)
class DeclaredArray:
    """An array member as its .npy header declares it."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int      # bytes of .npy header before the data


def show_value(value, limit: int = 60) -> str:
    """A value from the file, safe to print on one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def fail(path: str, field: str, problem: str) -> NoReturn:
    raise ModelFileError(f"{path}: {field}: {problem}")


@contextlib.contextmanager
def reading(path: str, field: str):
    """Turn what the zip and .npy readers raise into a ModelFileError naming ``field``."""
    try:
        yield
    except ModelFileError:
        raise
    except READ_ERRORS as exc:
        raise ModelFileError(f"{path}: {field}: not a readable model file ({error_text(exc)})") from None


def check_end_record(path: str, fh: BinaryIO) -> None:
    """The zip's end record: few enough members, a small enough directory (before zipfile reads it)."""
    end_record = getattr(zipfile, "_EndRecData", None)   # private, in every CPython 3; else zipfile's own checks
    if end_record is None:
        return
    with reading(path, "zip archive"):
        record = end_record(fh)
    if record is None:
        fail(path, "zip archive", "not a readable model file (no zip end record: not an .npz archive, or cut short)")
    entries, directory = record[zipfile._ECD_ENTRIES_TOTAL], record[zipfile._ECD_SIZE]
    if entries > MAX_MEMBERS:
        fail(path, "zip archive", f"{entries} members; expected at most {MAX_MEMBERS}")
    if directory > MAX_DIRECTORY_BYTES:
        fail(path, "zip archive", f"a directory of {directory} bytes; expected at most {MAX_DIRECTORY_BYTES}")


def read_members(path: str, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The members by array name, each checked from the zip directory alone (nothing decompressed)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        fail(path, "zip archive", f"{len(infos)} members; expected at most {MAX_MEMBERS}")
    members: dict[str, zipfile.ZipInfo] = {}
    total = total_compressed = 0
    for info in infos:
        field = f"member {show_value(info.filename)}"
        if info.flag_bits & 0x1:
            fail(path, field, "encrypted; expected a plain numpy .npz archive")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            fail(path, field, f"compression method {info.compress_type}; expected stored (0) or deflated (8), "
                               f"as numpy writes")
        if info.file_size > MAX_MEMBER_BYTES:
            fail(path, field, f"{info.file_size} bytes uncompressed; expected at most {MAX_MEMBER_BYTES}")
        if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            fail(path, field, f"{info.file_size} bytes compressed into {info.compress_size} (a zip bomb?); "
                               f"expected at most {MAX_RATIO:g} : 1")
        total += info.file_size
        total_compressed += info.compress_size
        key = info.filename.removesuffix(".npy")
        if key in members:
            fail(path, field, f"array {show_value(key)} appears twice in the archive; expected once")
        members[key] = info
    if total > MAX_TOTAL_BYTES:
        fail(path, "zip archive", f"{total} bytes uncompressed; expected at most {MAX_TOTAL_BYTES}")
    if total > RATIO_FROM_BYTES and total > MAX_RATIO * max(total_compressed, 1):
        fail(path, "zip archive", f"{total} bytes compressed into {total_compressed} (a zip bomb?); "
                                   f"expected at most {MAX_RATIO:g} : 1")
    return members


def npy_header(path: str, archive: zipfile.ZipFile, key: str, info: zipfile.ZipInfo) -> DeclaredArray:
    """An array member's .npy header, read without its data; its declared size checked against the member."""
    field = f"array {key}"
    with reading(path, field), archive.open(info) as fp:
        prefix = fp.read(10)
        if len(prefix) < 10 or prefix[:6] != b"\x93NUMPY":
            fail(path, field, "not a .npy array (no NUMPY magic)")
        version = (prefix[6], prefix[7])
        if version == (1, 0):
            length, size_bytes = prefix[8:10], 2
        elif version == (2, 0):
            length, size_bytes = prefix[8:10] + fp.read(2), 4
        else:
            fail(path, field, f".npy format version {version[0]}.{version[1]}; expected 1.0 or 2.0")
        header_len = int.from_bytes(length, "little")
        if header_len > MAX_NPY_HEADER_BYTES:
            fail(path, field, f"a .npy header of {header_len} bytes; expected at most {MAX_NPY_HEADER_BYTES}")
        text = fp.read(header_len)
    if len(text) < header_len:
        fail(path, field, "cut short inside its .npy header")
    stream = io.BytesIO(prefix[:8] + length + text)
    stream.seek(8)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = read(stream, max_header_size=MAX_NPY_HEADER_BYTES)
    except Exception as exc:   # noqa: BLE001 - numpy parses the header text with ast.literal_eval: anything
        raise ModelFileError(f"{path}: {field}: corrupt .npy header ({error_text(exc)})") from None
    if dtype.hasobject:
        fail(path, field, f"an array of Python objects ({dtype}); expected numbers (pickles are never loaded)")
    if any(d < 0 for d in shape):
        fail(path, field, f"declares shape {show_value(shape)}; expected sizes of 0 or more")
    offset = 8 + size_bytes + header_len
    declared = math.prod(shape) * dtype.itemsize
    if offset + declared != info.file_size:
        fail(path, field, f"declares shape {show_value(shape)} of {dtype} ({declared} bytes) but its member holds "
                           f"{max(info.file_size - offset, 0)} bytes of data; expected the two to agree")
    return DeclaredArray(info, tuple(shape), bool(fortran), dtype, offset)


def read_array(path: str, archive: zipfile.ZipFile, key: str, declared: DeclaredArray) -> np.ndarray:
    """The array's data, streamed into an array of its declared (and checked) size."""
    field = f"array {key}"
    out = np.empty(math.prod(declared.shape), dtype=declared.dtype)
    raw = out.view(np.uint8)
    with reading(path, field), archive.open(declared.info) as fp:
        if len(fp.read(declared.offset)) != declared.offset:
            fail(path, field, "cut short inside its .npy header")
        done = 0
        while done < raw.size:
            chunk = fp.read(min(CHUNK, raw.size - done))
            if not chunk:
                fail(path, field, f"cut short: {done} of {raw.size} bytes of data")
            raw[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)
        if fp.read(1):
            fail(path, field, f"more data than its shape {declared.shape} declares")
    if declared.fortran:
        return out.reshape(declared.shape[::-1]).transpose()
    return out.reshape(declared.shape)


def read_header(path: str, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo],
                 required: tuple[str, ...] = ()) -> dict:
    info = members.get("header")
    if info is None:
        fail(path, "header", "no header; not an optgen model file (expected a member header.npy)")
    if info.file_size > MAX_HEADER_BYTES:
        fail(path, "header", f"{info.file_size} bytes; expected at most {MAX_HEADER_BYTES}")
    declared = npy_header(path, archive, "header", info)
    if declared.dtype != np.uint8 or len(declared.shape) != 1:
        fail(path, "header", f"a {declared.dtype} array of shape {declared.shape}; expected the bytes (uint8, "
                              f"one axis) of a JSON object")
    data = read_array(path, archive, "header", declared)
    try:
        header = json.loads(data.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: header: corrupt header, not JSON text ({error_text(exc)})") from None
    if not isinstance(header, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
                type(None): "null"}.get(type(header), type(header).__name__)
        fail(path, "header", f"a JSON {kind}; expected a JSON object of fields "
                              f"({', '.join(required)}, ...)")
    return header
