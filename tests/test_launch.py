"""`accelerate launch` as users type it: two CPU processes, and two machines simulated on this one.

Every run here asserts the world size each rank logged: a launcher that quietly starts one
process, or processes that each train alone as rank 0 of 1, fail these tests.
"""

import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from helpers.recipe_runner import ROOT, command, environment, needs_squad, run_qa
from helpers.shared_runs import shared_folder
from qa.machine.hardware import bf16_available
from qa.run.checkpoints import checkpoint_problem

pytestmark = [pytest.mark.slow, needs_squad]

ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
LAUNCH_CONFIGS = ROOT / "configs" / "accelerate"
CPU_DDP = str(LAUNCH_CONFIGS / "cpu_ddp.yaml")
SMOKE_V2 = ROOT / "tests" / "configs" / "smoke-v2.json"
# 96 training questions: 6 optimizer steps of 16 windows, per process 8 when there are two.
SHORT = ["--max_train_samples", 96, "--report_to", "none", "--num_samples", 0]
# Measured with these runs: the 2-process F1 on the 32 smoke questions differed from the
# 1-process one by at most a few points. The runs take the same optimizer steps over the same
# windows at the same global batch and learning rate, but each process draws its own half of
# every batch and its own dropout masks, so the models are not bit-identical; 32 questions make
# one question worth about 3 F1 points. 10 points allows three questions to flip, and still
# fails a run that trained on half the data or at half the batch (it scores near 0 here).
F1_TOLERANCE = 10.0
# Forced bf16: no matmul peak to time. Where the CPU has no native bf16 (AVX2), every bf16
# product is emulated, many times slower: the one- and two-process runs of 96 questions took 20
# minutes there. So those runs train on 32 questions (2 optimizer steps) and score 8, with no
# scoring during training, and their F1 (of a model that barely trained) is not compared. They
# still check what forcing bf16 could break: every rank, the precision used, the same steps.
EMULATED_BF16 = not bf16_available()
FORCED_BF16 = ["--report_mfu", "false"]
if EMULATED_BF16:
    FORCED_BF16 += ["--max_train_samples", 32, "--max_eval_samples", 8, "--eval_strategy", "no"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ranks_logged(output: str) -> set[tuple[int, int]]:
    """(rank, world size) of every 'Process R of N' line the processes printed."""
    return {(int(r), int(n)) for r, n in re.findall(r"Process (\d+) of (\d+), device", output)}


def results(run) -> dict:
    return json.loads((run / "all_results.json").read_text())


def optimizer_steps(run) -> int:
    return json.loads((run / "trainer_state.json").read_text())["global_step"]


def steps_for_two(run) -> int:
    """Optimizer steps of one epoch over two processes of 8 windows each."""
    return math.ceil(math.ceil(results(run)["train_features"] / 2) / 8)


def train_one_process(base, bf16: str):
    # The one-process fp32 run's MFU figures are checked (the smoke config times no peak).
    flags = ["--bf16", bf16] + (FORCED_BF16 if bf16 == "true" else ["--report_mfu", "true"])
    result = run_qa(*SHORT, *flags, "--output_dir", base / "run")
    assert ranks_logged(result.stdout + result.stderr) == {(0, 1)}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    output = shared_folder(tmp_path_factory, "one", lambda b: train_one_process(b, "false")) / "run"
    # The smoke config scores a dev subset every 2 steps: the steps alone ran at a higher MFU.
    scores = results(output)
    assert 0 < scores["train_seconds_evaluating"] < scores["train_runtime"]
    assert scores["train_steps_mfu"] > scores["train_mfu"] > 0
    return output


@pytest.fixture(scope="module")
def one_process_bf16(tmp_path_factory):
    return (
        shared_folder(tmp_path_factory, "one-bf16", lambda b: train_one_process(b, "true")) / "run"
    )


def train_two_processes(output, bf16: str, launch_config: str = CPU_DDP, *extra):
    """SHORT on two CPU processes at 8 each; the launcher's and processes' output."""
    forced = FORCED_BF16 if bf16 == "true" else []
    result = run_qa(
        *SHORT, "--bf16", bf16, *forced, "--per_device_train_batch_size", 8, "--output_dir", output,
        launcher=[*ACCELERATE, "--config_file", launch_config, *extra],
    )  # fmt: skip
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """(output folder, output) of cpu_ddp.yaml with bf16 off, for the tests that compare."""

    def build(base):
        (base / "output.txt").write_text(train_two_processes(base / "run", "false"))

    base = shared_folder(tmp_path_factory, "two", build)
    return base / "run", (base / "output.txt").read_text()


def losses(run) -> list[float]:
    history = json.loads((run / "log_history.json").read_text())
    return [entry["loss"] for entry in history if "loss" in entry]


@pytest.mark.parametrize("bf16", ["false", "true"], ids=["bf16-off", "bf16-on"])
def test_two_processes_through_accelerate_train_like_one(bf16, request, tmp_path):
    """cpu_ddp.yaml, bf16 forced off (on a CPU without bf16 this once gave world size 1) and
    forced on (emulated, and slower, on a CPU without native bf16; so no MFU peak is timed)."""
    one_process = request.getfixturevalue("one_process" if bf16 == "false" else "one_process_bf16")
    if bf16 == "false":
        two, output = request.getfixturevalue("two_processes")
    else:
        two = tmp_path / "two"
        output = train_two_processes(two, bf16)
    assert ranks_logged(output) == {(0, 2), (1, 2)}
    assert "Parallelism: MULTI_CPU over 2 processes" in output
    machine = json.loads((two / "run_config.json").read_text())["machine"]
    assert machine["processes"] == 2
    assert machine["precision"].startswith("bf16" if bf16 == "true" else "fp32")
    # The same global batch (8 x 2 = 16): the same windows in the same number of steps.
    assert results(two)["train_features"] == results(one_process)["train_features"]
    predictions = json.loads((two / "predictions.json").read_text())
    assert len(predictions) == results(two)["eval_examples"] > 0  # each question once
    assert optimizer_steps(two) == optimizer_steps(one_process) == steps_for_two(two)
    if bf16 == "false" or not EMULATED_BF16:
        assert abs(results(two)["eval_f1"] - results(one_process)["eval_f1"]) <= F1_TOLERANCE
    # DDP does not search the graph for unused parameters (and so does not warn about it).
    assert "find_unused_parameters=True" not in output
    assert "Traceback" not in output


@pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None,
    reason="DeepSpeed is optional: pip install -r requirements-deepspeed.txt (.ci/run does)",
)
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_on_two_cpu_processes_trains_like_ddp(stage, two_processes, tmp_path):
    """DeepSpeed's CPU accelerator (gloo, its shared-memory op built on first use) runs the
    recipe's ZeRO configs on two CPU processes. The same windows, seeds and 8 x 2 batch as DDP:
    the losses agree to float rounding (reductions in another order: 1e-6 seen, 1e-4 allowed),
    and the saved model is whole (ZeRO-3 shards every weight): scored again by one process it
    gives the run's own predictions."""
    ddp, _ = two_processes
    run = tmp_path / f"zero{stage}"
    config = str(LAUNCH_CONFIGS / f"deepspeed_zero{stage}.yaml")
    output = train_two_processes(run, "false", config, "--num_processes", "2",
                                 "--main_process_port", "0")  # fmt: skip
    assert ranks_logged(output) == {(0, 2), (1, 2)}
    assert "Parallelism: DEEPSPEED over 2 processes" in output
    assert json.loads((run / "run_config.json").read_text())["parallelism"] == "DEEPSPEED"
    assert optimizer_steps(run) == optimizer_steps(ddp)
    assert losses(run) == pytest.approx(losses(ddp), abs=1e-4) and len(losses(run)) > 3
    run_qa("--model_name_or_path", run, "--do_train", "false", "--report_mfu", "false",
           "--bf16", "false", "--num_samples", 0, "--output_dir", tmp_path / "scored")  # fmt: skip
    assert (tmp_path / "scored" / "predictions.json").read_text() == (
        run / "predictions.json"
    ).read_text()


def test_the_fsdp_config_on_cpu_processes_is_refused_before_anything_is_written(tmp_path):
    """accelerate applies FSDP only on GPUs: on CPU processes the config would train as DDP
    under an FSDP label, or crash on meta-device weights (fsdp_cpu_ram_efficient_loading)."""
    result = run_qa(
        *SHORT, "--output_dir", tmp_path / "run", check=False,
        launcher=[*ACCELERATE, "--config_file", str(LAUNCH_CONFIGS / "fsdp.yaml"),
                  "--num_processes", "2", "--main_process_port", "0"],
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "error: the FSDP config needs GPUs" in output and "cpu_ddp.yaml" in output
    assert "meta tensor" not in output  # no process got as far as loading weights
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("name", "flags", "world", "parallelism"),
    [
        ("single_gpu.yaml", [], 1, "NO"),
        ("multi_gpu.yaml", ["--num_processes", "2", "--main_process_port", "0"], 2, "MULTI_CPU"),
    ],
)
def test_the_gpu_configs_start_what_they_say_on_cpu_processes_too(
    name, flags, world, parallelism, tmp_path
):
    """Scoring only (a few questions): the launch, the world size and the parallelism."""
    result = run_qa(
        "--do_train", "false", "--max_eval_samples", 4, "--report_mfu", "false",
        "--num_samples", 0, "--output_dir", tmp_path / "run",
        launcher=[*ACCELERATE, "--config_file", str(LAUNCH_CONFIGS / name), *flags],
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert ranks_logged(output) == {(rank, world) for rank in range(world)}
    assert f"Parallelism: {parallelism} over {world} processes" in output
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["parallelism"] == (
        parallelism
    )


def test_two_processes_by_flags_with_bf16_on_score_like_one(one_process, tmp_path):
    """`--multi_gpu --num_processes 2`, bf16 on: the same checkpoint scored by 2 processes.
    Scoring, not training: bf16 on a CPU without native bf16 is emulated and slow."""
    scored = {}
    for name, launch in (
        ("one", None),
        ("two", [*ACCELERATE, "--multi_gpu", "--num_processes", "2", "--main_process_port", "0"]),
    ):
        result = run_qa(
            "--model_name_or_path", one_process, "--do_train", "false", "--bf16", "true",
            "--max_eval_samples", 16, "--report_mfu", "false",  # no emulated-bf16 peak to time
            "--output_dir", tmp_path / name, launcher=launch,
        )  # fmt: skip
        scored[name] = ranks_logged(result.stdout + result.stderr)
    assert scored == {"one": {(0, 1)}, "two": {(0, 2), (1, 2)}}
    one, two = (tmp_path / name / "predictions.json" for name in ("one", "two"))
    assert len(json.loads(two.read_text())) == 16
    assert one.read_text() == two.read_text()


def start_machine(rank, port, output, log_path, *flags):
    """One of two simulated machines: its own `accelerate launch`, one process, in a new
    process group (so that a SIGKILL reaches the launcher and everything it started)."""
    launch = [
        *ACCELERATE, "--config_file", CPU_DDP, "--num_machines", "2", "--machine_rank", rank,
        "--num_processes", "2", "--main_process_ip", "127.0.0.1", "--main_process_port", port,
    ]  # fmt: skip
    flags = [*SHORT, "--per_device_train_batch_size", 8, "--cpu_threads", 1,
             "--output_dir", output, *flags]  # fmt: skip
    log = open(log_path, "w")  # noqa: SIM115 - closed when the process is reaped
    return subprocess.Popen(
        [str(part) for part in command(*flags, config=SMOKE_V2, launcher=launch)],
        cwd=ROOT,
        env=environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_machine(launcher: subprocess.Popen) -> None:
    """SIGKILL a simulated machine whole, as a power cut would: the launcher's process group and
    every process under it. torchrun starts each worker in a session of its own, so killing the
    group alone leaves the workers training on (seen: they still held the output folder's lock
    when the same command was run again)."""
    workers = psutil.Process(launcher.pid).children(recursive=True)  # before any is gone
    os.killpg(launcher.pid, signal.SIGKILL)
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()
    launcher.wait()
    psutil.wait_procs(workers, timeout=60)


def run_machines(tmp_path, name, output, *flags, timeout=900) -> list[str]:
    """Both machines to the end; their logs. Fails on a hang or a failure of either."""
    port = free_port()
    logs = [tmp_path / f"{name}-machine{r}.log" for r in (0, 1)]
    machines = [start_machine(r, port, output, logs[r], *flags) for r in (0, 1)]
    deadline = time.time() + timeout
    for machine in machines:
        try:
            machine.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for other in machines:
                kill_machine(other)
            pytest.fail(f"{name}: the machines hung:\n{logs[0].read_text()[-3000:]}")
    texts = [log.read_text() for log in logs]
    for machine, text in zip(machines, texts):
        assert machine.returncode == 0, f"{name} failed:\n{text[-3000:]}"
    return texts


def test_two_machines_share_one_run_resume_together_and_overwrite_safely(tmp_path, monkeypatch):
    """Two machines simulated on this one (one process each, one shared output folder)."""
    monkeypatch.setenv("SQUAD_V2_SPLIT_DIR", str(tmp_path / "split"))  # built by this run
    output = tmp_path / "shared" / "run"
    save = ["--save_strategy", "steps", "--save_steps", 2]

    # 1. Both start; the split is built once; both are killed once checkpoint-2 is whole.
    port = free_port()
    logs = [tmp_path / f"first-machine{r}.log" for r in (0, 1)]
    machines = [start_machine(r, port, output, logs[r], *save) for r in (0, 1)]
    deadline = time.time() + 900
    while checkpoint_problem(str(output / "checkpoint-2")) is not None:
        assert all(m.poll() is None for m in machines), logs[0].read_text()[-3000:]
        assert time.time() < deadline, "no checkpoint in 15 minutes"
        time.sleep(0.5)
    for machine in machines:
        kill_machine(machine)
    first = "".join(log.read_text() for log in logs)
    assert ranks_logged(first) == {(0, 2), (1, 2)}
    assert first.count("Built the dev-v2.0 article split") == 1
    assert first.count("article split in") == 2  # the other machine reused it
    assert not (output / "all_results.json").exists()

    # 2. The same commands resume, both from the checkpoint the main process chose.
    resumed = run_machines(tmp_path, "resumed", output, *save)
    # Our own log line (the Trainer's says "Resuming training from checkpoint with epoch ...").
    chosen = [set(re.findall(r"Resuming training from (/\S+)", text)) for text in resumed]
    assert chosen[0] == chosen[1] and len(chosen[0]) == 1
    assert "Every process resumes from" in resumed[0]
    assert optimizer_steps(output) == steps_for_two(output)
    assert json.loads((output / "run_config.json").read_text())["machine"]["processes"] == 2
    scores = results(output)
    assert scores["eval_examples"] == 48 and "tune_best_f1_thresh" in scores
    assert len(json.loads((output / "predictions.json").read_text())) == 48
    # Written once, by the main process: one train.log, whose lines are all its own.
    assert "Process 1 of 2" not in (output / "train.log").read_text()

    # 3. Overwriting: neither hangs nor loses the finished run, which is moved aside whole.
    before = (output / "model.safetensors").read_bytes()
    run_machines(tmp_path, "overwrite", output, "--max_train_samples", 16,
                 "--overwrite_output_dir", "true")  # fmt: skip
    assert (tmp_path / "shared" / "run.previous" / "model.safetensors").read_bytes() == before
    assert (tmp_path / "shared" / "run.previous" / "all_results.json").is_file()
    assert optimizer_steps(output) == steps_for_two(output) < 3
