"""The C heap of a long-running serving process (glibc; elsewhere these do nothing).

Measured on a BentoML worker serving int8 entries (`bench/serving_memory.py`): each batch of 8 texts allocates
tens of MB of short-lived numpy arrays (log-probabilities, candidates: 2 MB each at 64 rows), which glibc then
keeps resident: +45 MB after 20 such requests. With large blocks always mmapped (and so unmapped when freed), +2.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
LARGE_BLOCK_BYTES = 128 * 1024  # glibc's initial mmap threshold, kept fixed instead of growing to 32 MB
TRIM_THRESHOLD_BYTES = 1024 * 1024


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def return_large_blocks() -> None:
    """Serve every allocation of LARGE_BLOCK_BYTES or more from its own mapping, returned to the OS when freed
    (glibc otherwise raises the threshold after the first such free and keeps later ones in its heap)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


def release_free_memory() -> None:
    """Give the C heap's free pages back to the OS (`malloc_trim`). Loading an ONNX Runtime session, timing it
    and dropping it leaves tens of MB free but resident: 22 MB after five load-measure-drop rounds here."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
