"""zoo.allocator: large blocks stay mapped (glibc), so freed activations leave the process."""
from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import torch
from zoo.allocator import keep_large_allocations_mapped

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "on":
    assert keep_large_allocations_mapped()
big = torch.ones(20 << 20, dtype=torch.uint8)
del big  # glibc's default raises its mapping threshold to this block's size here
before = libc.mallinfo2().hblks
block = torch.ones(10 << 20, dtype=torch.uint8)
print(libc.mallinfo2().hblks - before)
"""


def _mapped_blocks_for_a_10_mib_tensor(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_large_tensor_is_mapped_after_a_larger_one_was_freed():
    """After a 20 MiB block is freed, glibc's default serves a 10 MiB tensor from the heap (no new
    mapped block: the threshold rose to 20 MiB); with the threshold fixed at 8 MiB it is mapped."""
    try:
        default = _mapped_blocks_for_a_10_mib_tensor("off")
    except AssertionError as exc:
        if "mallinfo2" in str(exc):
            pytest.skip("not glibc >= 2.33")
        raise
    assert default == 0
    assert _mapped_blocks_for_a_10_mib_tensor("on") == 1
