"""The machine a process runs on: its CPU and accelerators, what `--bf16 auto` picks there, the
flags that follow the hardware, and the per-process set-up (threads, allocator, seed, tf32)."""

import logging
import os
import platform
import re
from pathlib import Path

import torch
from transformers import TrainingArguments, set_seed

from qa.machine.memory import keep_freed_memory, limit_kernel_cache
from qa.machine.threads import OMP_NUM_THREADS_GIVEN, cpu_threads

logger = logging.getLogger("run_qa.hardware")  # a child of run_qa's logger: lands in train.log


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # CPUs that run bf16 matrix products natively


def cpu_description() -> tuple[str, set[str]]:
    """(model name, flags) of this machine's CPU, from /proc/cpuinfo where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", info, re.MULTILINE)
    return (
        model.group(1).strip() if model else platform.machine(),
        set(flags.group(1).split()) if flags else set(),
    )


def has_accelerator() -> bool:
    """A GPU (or another device the Trainer would pick over the CPU) in this process."""
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or bool(mps and mps.is_available())
        or bool(xpu and xpu.is_available())
    )


def precision_path() -> tuple[bool, str]:
    """(use bf16, why): what `--bf16 auto` decides on this machine, in words for the log."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        if torch.cuda.is_bf16_supported():
            return True, f"bf16: GPU {name} supports it"
        return False, f"fp16: GPU {name} has no bf16 (V100, T4 and older)"
    model, flags = cpu_description()
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    if found:
        return True, f"bf16: CPU {model} has {', '.join(found)}"
    simd = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "no AVX2"
    return False, f"fp32: CPU {model} has no {' or '.join(BF16_CPU_FLAGS)} ({simd})"


def bf16_available() -> bool:
    return precision_path()[0]


def refuse_fsdp_without_an_accelerator() -> None:
    """accelerate 1.15 applies an FSDP config only to GPU-like devices: CPU processes would
    train as plain DDP under an FSDP label, and with fsdp_cpu_ram_efficient_loading every
    process but the first would crash on weights left on the meta device."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and not has_accelerator():
        raise SystemExit(
            "error: the FSDP config needs GPUs: accelerate runs FSDP only on GPUs, and these "
            "processes have none. For several CPU processes use "
            "--config_file configs/accelerate/cpu_ddp.yaml (DDP over gloo)."
        )


def resolve_hardware_flags(flags: list[str]) -> list[str]:
    """Settings that follow this process's hardware, as flags argparse then checks.

    `--bf16 auto` becomes bf16 where the hardware has it, else fp16 autocast on a GPU (V100,
    T4) and fp32 on a CPU. Without a GPU, `use_cpu` is set whatever the precision: only then
    does TrainingArguments start a gloo process group under torchrun or `accelerate launch
    --multi_gpu`; without it each CPU process trains alone as rank 0 of 1. DDP is told every
    parameter gets a gradient (true of a span head on an encoder), which spares it a search of
    the graph each step and its warning. Both go first, so the config's or the user's own
    use_cpu / ddp_find_unused_parameters still win.
    """
    defaults = ["--ddp_find_unused_parameters", "false"]
    if not has_accelerator():
        defaults += ["--use_cpu", "true"]
    resolved, rest = [], list(flags)
    while rest:
        flag = rest.pop(0)
        resolved.append(flag)
        if flag == "--bf16" and rest and rest[0] == "auto":
            rest.pop(0)
            use_bf16 = bf16_available()
            resolved.append(str(use_bf16).lower())
            if not use_bf16 and torch.cuda.is_available():
                resolved += ["--fp16", "true"]
    return defaults + resolved


def configure_machine(training_args: TrainingArguments, run_args) -> None:
    """Threads, allocator, seed and tf32 for this process, and log lines saying what it runs on."""
    if training_args.device.type == "cpu":
        torch.set_num_threads(cpu_threads(run_args.cpu_threads))
        logger.info(
            "OpenMP started with OMP_NUM_THREADS=%s (the launcher gave %s)",
            os.environ.get("OMP_NUM_THREADS"),
            OMP_NUM_THREADS_GIVEN or "none",
        )
    logger.info("Memory: %s", keep_freed_memory(run_args.keep_freed_memory))
    logger.info("Kernels: %s", limit_kernel_cache(run_args.kernel_cache_capacity))
    where = (
        f"Process {training_args.process_index} of {training_args.world_size}, device "
        f"{training_args.device}, bf16 {training_args.bf16}, {torch.get_num_threads()} CPU "
        f"threads; auto precision would pick {precision_path()[1]}"
    )
    if training_args.should_log:
        logger.info(where)
    else:  # the other processes log warnings only, but each must say which rank of how many it is
        print(where, flush=True)
    set_seed(training_args.seed)
    if torch.cuda.is_available():  # tf32 matrix products: free speed on Ampere and later
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
