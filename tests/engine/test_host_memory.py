"""HOST_MEMORY_CACHE_MB: freed host memory is reused instead of page-faulted in again."""

import resource
import subprocess
import sys
import textwrap

import pytest

from ssl_lab.utils.host_memory import keep_freed_host_memory

_BLOCK_BYTES = 6 << 20  # one (128, 3, 64, 64) float tensor: a batched-augmentation temporary
_BLOCKS, _STEPS = 4, 20

# Each step mallocs 4 blocks, writes them and frees them (the temporaries of a chain of tensor ops,
# without torch's small bookkeeping blocks, whose place on the heap varies from run to run); prints
# the minor page faults of 20 steps after a warm-up step. argv[1]: HOST_MEMORY_CACHE_MB.
_PROGRAM = textwrap.dedent(f"""
    import ctypes, resource, sys
    from ssl_lab.utils.host_memory import keep_freed_host_memory
    keep_freed_host_memory(int(sys.argv[1]))
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    def step():
        blocks = [libc.malloc({_BLOCK_BYTES}) for _ in range({_BLOCKS})]
        for block in blocks:
            libc.memset(block, 1, {_BLOCK_BYTES})
        for block in blocks:
            libc.free(block)
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range({_STEPS}):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _page_faults(cache_mb: int) -> int:
    result = subprocess.run([sys.executable, "-c", _PROGRAM, str(cache_mb)], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_kept_memory_is_reused_without_page_faults():
    block_pages = _BLOCK_BYTES // resource.getpagesize()
    fresh = _STEPS * _BLOCKS * block_pages  # every page faulted in anew
    default, kept = _page_faults(0), _page_faults(256)
    # malloc's defaults trim the freed 24 MB at the top of the heap and fault it in again each step
    assert default > 0.9 * fresh, (default, fresh)
    # kept, the blocks are served from the retained memory: not one block's pages are new
    assert kept < block_pages, (kept, block_pages)


def test_zero_keeps_the_defaults():
    assert keep_freed_host_memory(0) is False
