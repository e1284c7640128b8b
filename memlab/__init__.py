"""memlab: the edge of memorization in diffusion models, reproduced.

Importing the package tunes the C allocator of this process where it is glibc's (Linux): a
training step allocates and frees the same tensors of a few MB every step, and glibc by
default gives freed memory back to the system (trim) and maps large blocks afresh (mmap), so
every step pays for page faults on memory it had a moment ago. Keeping freed memory for reuse
made a ci-profile training step about 20% faster on this project's 2-core machine (5.8-6.6
against 4.4-5.5 ms per step, 10 models at N = 50, one thread, measured side by side; the
numbers trained are the same, only where the memory comes from changes; the performance
appendix measures it). Elsewhere (macOS, musl), or with the environment variable
MEMLAB_MALLOC=default, nothing is changed.
"""

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>


def _keep_freed_memory() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # blocks up to 32 MiB come from the reusable heap
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)   # keep up to 1 GiB of freed heap instead of returning it


if os.environ.get("MEMLAB_MALLOC") != "default":
    _keep_freed_memory()
