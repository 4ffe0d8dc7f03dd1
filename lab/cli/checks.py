"""Checks of command-line values made before anything starts: argparse types for numbers, and
the places a command will write (a file, a new folder), each refused in one line that names the
option and what was expected."""

from __future__ import annotations

import argparse
from pathlib import Path

from optgen.drivers.errors import OptgenError

__all__ = ["whole_number", "positive_number", "check_file_to_write", "check_folder_to_make", "check_file_to_read"]


def whole_number(low: int):
    """An argparse type: a whole number >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: expected a whole number >= {low}")
        return value

    parse.__name__ = f"whole number >= {low}"
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number > 0") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: expected a finite number > 0")
    return value


def _first_existing(path: Path) -> Path:
    here = path.absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def check_file_to_write(path: Path, option: str, *, overwrite: bool = True) -> None:
    """``path`` can be written as a file: not a folder, its folder exists (and, unless
    ``overwrite``, no file there yet)."""
    if path.is_dir():
        raise OptgenError(f"{option} {path}: a folder; expected a file name")
    if path.exists() and not overwrite:
        raise OptgenError(f"{option} {path}: already exists; not overwriting it (choose a new name)")
    parent = path.absolute().parent
    if not parent.is_dir():
        above = _first_existing(parent)
        why = f"{above} is a file, not a folder" if not above.is_dir() else f"the folder {parent} does not exist"
        raise OptgenError(f"{option} {path}: cannot write there: {why}")


def check_folder_to_make(path: Path, option: str) -> None:
    """``path`` is a folder or can be made one: it is not a file, and nothing above it is a file."""
    if path.exists() and not path.is_dir():
        raise OptgenError(f"{option} {path}: a file; expected a folder")
    above = _first_existing(path)
    if not above.is_dir():
        raise OptgenError(f"{option} {path}: cannot make this folder: {above} is a file, not a folder")


def check_file_to_read(path: Path, option: str) -> None:
    """``path`` is an existing file."""
    if not path.exists():
        raise OptgenError(f"{option} {path}: no such file")
    if not path.is_file():
        raise OptgenError(f"{option} {path}: not a file")
