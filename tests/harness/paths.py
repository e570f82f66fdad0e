"""Where the repository, its caches and the importable collection live."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL_CACHE = ROOT / ".cache"
COLLECTIONS = LOCAL_CACHE / "collections"


def ensure_collection_path() -> Path:
    """Expose the working tree as ansible_collections/dualboot/db (a symlink) and make it importable."""
    link = COLLECTIONS / "ansible_collections" / "dualboot" / "db"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink(missing_ok=True)
        try:
            link.symlink_to(ROOT)
        except FileExistsError:  # another test worker made it at the same moment
            pass
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    return COLLECTIONS


def ferretdb_binary() -> str | None:
    candidates = [os.environ.get("DUALBOOT_FERRETDB_BIN"), str(LOCAL_CACHE / "bin" / "ferretdb")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    from shutil import which

    return which("ferretdb")
