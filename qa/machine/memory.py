"""Resident memory of this process while it trains: is it small, and is it flat?

A leak or a growing cache shows as resident memory that keeps rising after the first steps, when
every buffer has been allocated once; the peak alone cannot tell that apart from one big buffer.
"""

import ctypes
import os
import resource

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# glibc's mallopt() parameters (malloc.h) and what this recipe sets them to; each value fits
# mallopt's int. The environment variables of the same meaning win when set.
KEEP_FREED = {
    "MALLOC_TRIM_THRESHOLD_": (-1, 2**31 - 1),  # M_TRIM_THRESHOLD: never hand the heap back
    "MALLOC_TOP_PAD_": (-2, 2**30),  # M_TOP_PAD: grow the heap 1 GiB at a time
    "MALLOC_MMAP_THRESHOLD_": (-3, 2**31 - 1),  # M_MMAP_THRESHOLD: tensors from the heap
}


def keep_freed_memory(enabled: bool = True) -> str:
    """Ask glibc to keep freed memory for reuse instead of returning it to the kernel.

    PyTorch frees and reallocates the same large buffers every training step; by default glibc
    serves each from a fresh mmap and returns it on free, so every step faults its pages in
    again. Kept, they are reused: faster steps (docs/speed.md: about 1.17x on 2 cores) for a
    higher, but still bounded, resident peak. Set here rather than in the environment so that
    the bare command trains as fast as `make train`. Returns a line for the log."""
    if not enabled:
        return "glibc allocator as is (keep_freed_memory false)"
    if given := [name for name in KEEP_FREED if name in os.environ]:
        return f"glibc allocator settings from the environment ({', '.join(given)})"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "allocator as is (not glibc)"
    if all(mallopt(param, value) == 1 for param, value in KEEP_FREED.values()):
        return "glibc keeps freed memory for reuse (mallopt: no trim, 1 GiB top pad, no mmap)"
    return "allocator as is (glibc refused the settings)"


def resident_mib() -> float:
    """This process's resident memory now (Linux /proc), else its peak so far."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * PAGE / 2**20
    except OSError:
        return peak_mib()


def peak_mib() -> float:
    """This process's own peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
