"""Files that appear whole, and never over another: what run files and calibration files share."""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["publish_exclusively"]


def publish_exclusively(part: Path, final: Path) -> None:
    """Give the finished file ``part`` the name ``final``, never over a file already there
    (FileExistsError then): a hard link, then ``part`` removed; on a file system without hard
    links, a rename once the name is seen to be free."""
    try:
        os.link(part, final)                 # fails if ``final`` exists
    except FileExistsError:
        raise
    except OSError:                          # a file system without hard links
        if final.exists():
            raise FileExistsError(errno.EEXIST, "a file is already there", str(final)) from None
        os.replace(part, final)
        return
    os.unlink(part)
