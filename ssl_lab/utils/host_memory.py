"""The host (CPU) memory allocator of the process: glibc malloc's reuse of freed memory."""

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit systems


def keep_freed_host_memory(megabytes: int) -> bool:
    """Let glibc malloc keep up to `megabytes` of freed memory for reuse instead of returning it to
    the OS, and serve blocks up to 32 MB from that pool rather than from fresh mappings.

    Freshly mapped memory page-faults on first touch, which costs about as much as writing it: a
    chain of small tensor ops (the batched augmentation on the CPU) otherwise pays it for every
    temporary. The retained memory is bounded by `megabytes`. Returns False (and changes nothing)
    for 0 or where the C library is not glibc.
    """
    if megabytes <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        logger.info("The C library has no mallopt (not glibc): the host allocator keeps its defaults")
        return False
    trim = min(megabytes << 20, 2**31 - 1)  # mallopt takes an int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and mallopt(_M_TRIM_THRESHOLD, trim))
