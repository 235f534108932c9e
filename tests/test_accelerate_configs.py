"""Every accelerate config starts what its header says, read as `accelerate launch` reads it."""

import re
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "accelerate"
YAMLS = sorted(p.name for p in CONFIGS.glob("*.yaml"))


def test_the_launch_story_has_a_config_per_kind_of_run():
    assert set(YAMLS) == {
        "cpu_ddp.yaml",
        "single_gpu.yaml",
        "multi_gpu.yaml",
        "fsdp.yaml",
        "deepspeed_zero2.yaml",
        "deepspeed_zero3.yaml",
    }


@pytest.mark.parametrize("name", YAMLS)
def test_each_config_loads_and_its_header_shows_the_command_for_it(name):
    config = load_config_from_file(str(CONFIGS / name))
    header = (CONFIGS / name).read_text().split("compute_environment")[0]
    assert f"accelerate launch --config_file configs/accelerate/{name} run_qa.py" in header
    assert config.mixed_precision == "no"  # run_qa.py's bf16 auto decides, per machine
    # The per-device batch the header suggests keeps the recipe's 16 windows per step.
    suggested = re.search(r"--per_device_train_batch_size (\d+)", header)
    per_device = int(suggested.group(1)) if suggested else 16
    assert per_device * config.num_processes == 16, name


def test_the_cpu_config_starts_gloo_processes_not_accelerates_single_process_mpi_path():
    """MULTI_CPU starts one process unless MPI is installed; MULTI_GPU with use_cpu starts
    num_processes torchrun processes, which run_qa.py joins over gloo."""
    config = load_config_from_file(str(CONFIGS / "cpu_ddp.yaml"))
    assert config.distributed_type == "MULTI_GPU" and config.use_cpu is True
    assert (
        config.num_processes == 2 and "Two CPU processes" in (CONFIGS / "cpu_ddp.yaml").read_text()
    )


@pytest.mark.parametrize(
    "name", ["multi_gpu.yaml", "fsdp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"]
)
def test_gpu_configs_run_on_gpus(name):
    config = load_config_from_file(str(CONFIGS / name))
    assert config.num_processes == 8 and config.use_cpu is False
