"""keep_freed_memory: freed tensor memory is reused without new page faults (glibc malloc on Linux)."""

import os
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
    env = {**os.environ, "RESNETLAB_MALLOC": env_value}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is a Linux setting")
def test_cpu_device_keeps_freed_memory_mapped():
    # with RESNETLAB_MALLOC=system every 64 MiB allocation gets fresh pages (163,840 faults in 4 KiB pages);
    # kept memory costs about one allocation's worth (the heap grows once). Compared, not absolute: with
    # transparent huge pages on for everything both counts shrink
    system, kept = faults("system"), faults("")
    assert kept * 4 < system
