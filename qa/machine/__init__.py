"""The machine, below every stage: precision and threads (hardware, threads), the allocator
and resident memory (memory), the attention kernel (attention), FLOPs and MFU (flops).
"""
