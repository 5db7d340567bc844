"""HOST_MEMORY_CACHE_MB: freed host memory is reused instead of page-faulted in again."""
import subprocess
import sys
import textwrap

import pytest

from ssl_lab.utils.host_memory import keep_freed_host_memory

# A chain of tensor ops on (128, 3, 64, 64) floats (the batched augmentation's size), run 20 times;
# prints the minor page faults of those 20 runs. argv[1]: HOST_MEMORY_CACHE_MB (0: malloc's defaults).
_CHAIN = textwrap.dedent("""
    import resource, sys, torch
    from ssl_lab.utils.host_memory import keep_freed_host_memory
    keep_freed_host_memory(int(sys.argv[1]))
    torch.set_num_threads(1)
    x = torch.rand(128, 3, 64, 64)
    def chain():
        k = x + 1
        return float(torch.minimum(k, 4 - k).clamp_(0, 1).mul_(x).neg_().add_(x)[0, 0, 0, 0])
    chain()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        chain()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _page_faults(cache_mb: int) -> int:
    result = subprocess.run([sys.executable, "-c", _CHAIN, str(cache_mb)], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = _page_faults(0), _page_faults(256)
    # malloc's defaults return the freed 6 MB temporaries to the OS and fault them in again
    # (~1000 faults a chain of 5 temporaries here); kept, most of them are reused.
    assert kept * 2 < default, (default, kept)


def test_zero_keeps_the_defaults():
    assert keep_freed_host_memory(0) is False
