"""memlab: the edge of memorization in diffusion models, reproduced.

Importing the package tunes the C allocator of this process where it is glibc's (Linux): a
training step allocates and frees the same tensors of a few MB every step, and glibc by
default gives freed memory back to the system (trim) and maps large blocks afresh (mmap), so
every step pays for page faults on memory it had a moment ago (hundreds per step at the ci
profile's size). Keeping freed memory for reuse changes where the memory comes from, not the
numbers trained; the performance appendix measures how much faster a step gets. Elsewhere
(macOS, musl), or with the environment variable MEMLAB_MALLOC=default, nothing is changed.
"""

import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>


def _keep_freed_memory() -> None:
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (ImportError, OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # blocks up to 32 MiB (glibc's limit) come from the reusable heap
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)   # keep up to 1 GiB of freed heap instead of returning it


if os.environ.get("MEMLAB_MALLOC") != "default":
    _keep_freed_memory()
