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
    # M_MMAP_THRESHOLD: blocks of 4 MiB and more (a long batch's activations) get pages of their
    # own and give them back when freed. From the heap, the next batches' smaller tensors and the
    # kernels cached for their shapes settle in the holes such a block leaves, and the next long
    # batch has to grow the heap: +288 MiB per round of lengths in bench/heap_growth.py.
    "MALLOC_MMAP_THRESHOLD_": (-3, 4 * 2**20),
}

# oneDNN, which runs PyTorch's CPU matrix products, builds kernels for each shape it meets and
# keeps the last 1,024 (its default); a run meets dozens of batch lengths, and each kept kernel
# also holds the heap open where it was built. These variables set that number; when set, they win.
KERNEL_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")


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
        mapped_from = KEEP_FREED["MALLOC_MMAP_THRESHOLD_"][1] // 2**20
        return (
            "glibc keeps freed memory for reuse (mallopt: no trim, 1 GiB top pad; "
            f"blocks from {mapped_from} MiB on are mapped on their own)"
        )
    return "allocator as is (glibc refused the settings)"


def kernel_cache_from_environment() -> tuple[str, str] | None:
    """(variable, value) of the first kernel-cache variable set in the environment, or None."""
    return next(((n, os.environ[n]) for n in KERNEL_CACHE_VARIABLES if n in os.environ), None)


def limit_kernel_cache(capacity: int) -> str:
    """Have oneDNN keep its `capacity` most recently used kernels (-1: its own default).

    oneDNN reads the variable when it builds its first kernel, not when torch loads, so this
    works from any point before the first matrix product. Returns a line for the log."""
    if given := kernel_cache_from_environment():
        return f"oneDNN kernel cache from the environment ({given[0]}={given[1]})"
    if capacity < 0:
        return "oneDNN kernel cache as is (its last 1,024 kernels)"
    os.environ[KERNEL_CACHE_VARIABLES[0]] = str(capacity)
    return f"oneDNN keeps its last {capacity} kernels (kernel_cache_capacity)"


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
