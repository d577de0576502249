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

Blocks under the threshold (per-layer tensors of 0.1–8 MiB: a LoRA layer's activations, attention
rows, optimiser temporaries) still come from the heap, and with sequence lengths that change from
batch to batch the heap's holes do not fit the next step's requests: the same DPO recipe still
grew from 1.9 to 3.8 GB over its first 4 steps. :func:`release_free_memory` (``malloc_trim(0)``) gives the
free pages inside the heap back to the system; :class:`zoo.trainer.memory.ReleaseFreedMemory`
calls it from a background thread while a CPU run trains.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

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
    libc = _glibc()  # musl and others have other mallopt semantics
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) was refused", threshold)
    return done


@functools.cache
def _glibc():
    """glibc's ``libc`` handle, or None for another C library (looked up once: ``find_library`` runs ``ldconfig``)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # exists in glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def release_free_memory() -> bool:
    """Return the free pages of the C heap to the system (glibc's ``malloc_trim(0)``); what is in
    use is untouched. Returns whether it could (False on other C libraries)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim(0)
    return True


#: Bytes per page, for ``/proc/self/statm``.
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident set size (``/proc/self/statm``), or None where there is no such file."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None
