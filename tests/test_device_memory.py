"""keep_freed_memory: freed tensor memory is reused without new page faults (glibc malloc on Linux)."""

import subprocess
import sys

import pytest

# Allocates and fills a 64 MiB tensor 10 times (after one warm-up) and prints the minor page faults that cost:
# pages handed back to the kernel on free must be faulted in again on the next allocation.
SCRIPT = """
import resource, sys, torch
from resnetlab.device import resolve_device
resolve_device("cpu")
def once():
    torch.empty(16 * 2**20).fill_(1.0)
once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    once()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(env_value: str) -> int:
    import os
    env = {**os.environ, "RESNETLAB_MALLOC": env_value}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is a Linux setting")
def test_cpu_device_keeps_freed_memory_mapped():
    # 10 x 64 MiB in 4 KiB pages is 163,840 faults when every allocation gets fresh pages; kept memory
    # costs at most one allocation's worth (16,384: the heap grows once)
    assert faults("system") > 100_000
    assert faults("") < 30_000


def test_keep_freed_memory_is_idempotent():
    from resnetlab.device import keep_freed_memory
    first = keep_freed_memory()
    assert keep_freed_memory() is first
    assert first is sys.platform.startswith("linux")
