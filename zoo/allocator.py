"""The C allocator's handling of large tensors on CPU: freed activations go back to the system.

glibc's ``malloc`` serves a request of at least ``M_MMAP_THRESHOLD`` bytes with a mapping of its
own, returned to the system when freed. The threshold starts at 128 KiB, but each time such a
block is freed it rises to that block's size, up to 32 MiB. After the first forward pass of a
training step, activation-sized tensors (9–37 MiB for SmolLM2 at 16 × 256 positions) therefore
come from the heap, whose freed space is reused only by requests that fit its holes and is
rarely returned: the resident size grows step after step. Two LoRA DPO steps of SmolLM2 at
8 pairs × 256 tokens with activation checkpointing reached 4.2 and then 6.4 GB of RSS with the
default behaviour, 1.6 and 1.9 GB with the threshold fixed at 8 MiB, for the same tensors.

:func:`keep_large_allocations_mapped` fixes the threshold (which also turns the adjustment off),
so every block of at least that size is mapped and unmapped on its own. The ``zoo`` command calls
it at start-up; it does nothing on a C library other than glibc's.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: ``mallopt`` parameter numbers from glibc's ``malloc.h``.
_M_MMAP_THRESHOLD = -3
#: Blocks of 8 MiB and more are mapped: activations and logits chunks, not the many small tensors
#: whose reuse from the heap is what makes the heap fast.
LARGE_BLOCK = 8 << 20


def keep_large_allocations_mapped(threshold: int = LARGE_BLOCK) -> bool:
    """Serve every allocation of at least ``threshold`` bytes with its own mapping (glibc only).

    Returns whether the setting took effect.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        # gnu_get_libc_version exists in glibc only: musl and others have other mallopt semantics.
        libc.gnu_get_libc_version
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) was refused", threshold)
    return done
