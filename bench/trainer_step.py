"""The recipe's own Trainer step against the bare step, on the same batches, in one process.

    python -m bench.trainer_step [--out results/benches/trainer-step] [--fraction 0.03]

Builds the short headline run's Trainer as run_qa.py builds it (configs/squad20pct.json at 3% of
the questions, no evaluation): its windows, sampler and collator, its memory settings, the
accelerate-wrapped model, clipping, schedule and callbacks, and trains it. Beside it, a second copy
of the model takes bench/steps.py's bare step (autocast forward, backward, fused AdamW) on each
batch the Trainer trains on: before the Trainer's step on odd steps, after it on even ones, so that
neither always finds the batch length's kernels already built. Both are timed in the same process,
at the same moments of the host, with the same allocator and kernel-cache settings: their ratio is
what the Trainer's step machinery costs, apart from the host's drift between processes. Also timed:
what the Trainer's loop does between its steps (fetching and collating the next batch, logging).
Writes OUT/<class>.md and .json.
"""

import argparse
import statistics
import tempfile
import time

import torch
from transformers import TrainerCallback

import run_qa
from bench.real_steps import new_model, real_tokens
from bench.steps import optimizer_step
from bench.train_step import best_peak, machine_fields, write_report
from qa import ROOT
from qa.machine.flops import forward_flops
from qa.run.outputs import setup_logging


class StepClock(TrainerCallback):
    """Times each Trainer step (on_step_begin to on_step_end) and the bare step on its batch."""

    def __init__(self, bare_step):
        self.bare_step, self.batch = bare_step, None
        self.trainer, self.bare, self.between, self.flops = [], [], [], []
        self.order = []  # ("bare" or "Trainer", step), as they ran
        self._began = self._ended = None

    def keep_batches(self, trainer) -> None:
        """Have the Trainer hand this clock each batch it fetches, before its step begins."""
        fetch = trainer.get_batch_samples

        def fetch_and_keep(*args, **kwargs):
            batches, items = fetch(*args, **kwargs)
            self.batch = batches[0]  # one batch a step: no gradient accumulation here
            return batches, items

        trainer.get_batch_samples = fetch_and_keep

    def _time_bare(self, step: int) -> None:
        began = time.perf_counter()
        self.bare_step(self.batch)
        self.bare.append(time.perf_counter() - began)
        self.order.append(("bare", step))

    def on_step_begin(self, args, state, control, **kwargs):
        if self._ended is not None:
            self.between.append(time.perf_counter() - self._ended)
        if state.global_step % 2 == 1:
            self._time_bare(state.global_step)
        self._began = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.trainer.append(time.perf_counter() - self._began)
        step = state.global_step - 1  # global_step already counts this step
        self.order.append(("Trainer", step))
        self.flops.append(3 * forward_flops(model.config, real_tokens(self.batch)))
        if step % 2 == 0:
            self._time_bare(step)
        self._ended = time.perf_counter()


def recipe_trainer(fraction: float, output_dir: str, train_file: str | None):
    """The short headline run's Trainer, built by run_qa.py's own stages."""
    argv = [
        str(ROOT / "configs" / "squad20pct.json"),
        *(("--train_file", train_file) if train_file else ()),
        *("--train_fraction", str(fraction), "--do_eval", "false", "--eval_strategy", "no"),
        *("--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"),
        *("--output_dir", output_dir, "--overwrite_output_dir", "true"),
    ]
    args = run_qa.parse_arguments(argv)
    setup_logging(args.training)
    start = run_qa.start_run(args)  # the recipe's threads, allocator and kernel cache
    examples, checksums = run_qa.load_examples(args)
    model_path, tokenizer, model = run_qa.load_checked_model(args)
    threshold = run_qa.starting_threshold(args.data, model_path, tuning=False)
    windows = run_qa.make_windows(args, examples, tokenizer, checksums)
    trainer, _ = run_qa.build_trainer(args, model, tokenizer, examples, windows, threshold, start)
    return trainer, bool(args.training.bf16)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "benches" / "trainer-step"))
    parser.add_argument("--fraction", type=float, default=0.03, help="of the train questions")
    parser.add_argument("--train_file", help="instead of the config's (a check on a small file)")
    parser.add_argument("--untimed", type=int, default=8, help="first steps left out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as output_dir:
        trainer, bf16 = recipe_trainer(args.fraction, output_dir, args.train_file)
        # The peak's random matrices and the second model draw random numbers: put the generator
        # back as the run left it, for the run's own batch order.
        rng = torch.get_rng_state()
        dtype = torch.bfloat16 if bf16 else torch.float32
        peak_before = best_peak(dtype)
        bare_model, bare_optimizer = new_model(bf16)
        torch.set_rng_state(rng)
        clock = StepClock(lambda batch: optimizer_step(bare_model, bare_optimizer, batch, bf16))
        clock.keep_batches(trainer)
        trainer.add_callback(clock)
        train_loss = trainer.train().training_loss
        peak = max(peak_before, best_peak(dtype))

    # Left out: the first steps compile the attention kernel and build the longest batch's kernels.
    untimed = args.untimed
    flops = sum(clock.flops[untimed:])
    rows = {}
    for name, seconds in (("Trainer's step", clock.trainer), ("bare step", clock.bare)):
        timed = seconds[untimed:]
        rows[name] = {
            "seconds": sum(timed),
            "median_step_ms": 1000 * statistics.median(timed),
            "mfu": flops / sum(timed) / peak,
        }
    report = {
        **machine_fields(dtype, peak),
        "fraction": args.fraction,
        "steps": len(clock.trainer),
        "untimed": untimed,
        "train_loss": train_loss,  # the short run's own, when its batches came in its order
        "cases": rows,
        "between_steps_seconds": sum(clock.between[untimed:]),
        "step_seconds": {"Trainer's step": clock.trainer, "bare step": clock.bare},
    }
    write_report(args.out, report, markdown)


def markdown(report: dict) -> str:
    """The committed table, drawn from the report alone."""
    rows = report["cases"]
    bare = rows["bare step"]["seconds"]
    timed = report["steps"] - report["untimed"]
    gaps = max(1, timed - 1)  # between_steps_seconds sums the gaps after the first timed step
    lines = [
        f"`python -m bench.trainer_step`: {report['cpu']} ({report['class']}), "
        f"{report['threads']} threads, torch {report['torch']}, {report['precision']}. The short "
        f"headline run's Trainer ({100 * report['fraction']:g}% of the questions, "
        f"{report['steps']} steps, the recipe's memory settings) and the bare step of a second "
        "copy of the model on each of its batches, in turns, in one process; the last "
        f"{timed} steps timed. MFU: model FLOPs on real tokens over seconds over the best "
        f"4096 x 4096 product of 6 trials ({report['peak_flops'] / 1e12:.3f} TFLOP/s).",
        "",
        "| step | seconds | vs bare step | median step (ms) | MFU |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {r['seconds']:.1f} | {r['seconds'] / bare:.3f} | "
            f"{r['median_step_ms']:.0f} | {r['mfu']:.1%} |"
            for name, r in rows.items()
        ),
        "",
        "Between the Trainer's timed steps (fetching and collating the next batch, logging): "
        f"{report['between_steps_seconds']:.1f} s in all, "
        f"{1000 * report['between_steps_seconds'] / gaps:.1f} ms a step.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
