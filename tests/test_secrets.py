"""A Hub token given to run_qa.py reaches huggingface_hub and no file, log line or model card."""

import io
import json

import pytest
import torch
from huggingface_hub import get_token

from helpers.recipe_runner import needs_squad, run_qa
from qa.run.config import parse_arguments
from qa.run.outputs import run_metadata

SECRET = "hf_SecretTokenNotToBeWritten0123456789"


@pytest.fixture
def hf_token_restored(monkeypatch):
    """HF_TOKEN as it was before the test, whatever parse_arguments set."""
    monkeypatch.setenv("HF_TOKEN", "set-before-the-test")
    monkeypatch.delenv("HF_TOKEN")


@pytest.mark.parametrize(
    "given",
    [["--hub_token", SECRET], [f"--hub_token={SECRET}"], ["--hub_tok", SECRET]],
    ids=["flag-value", "flag=value", "abbreviated"],
)
def test_a_hub_token_flag_reaches_the_hub_client_and_no_saved_argument(
    tmp_path, hf_token_restored, given
):
    argv = ["--output_dir", str(tmp_path / "run"), "--do_eval", "--report_to", "none", *given]
    args = parse_arguments(argv)
    training_args = args.training
    assert get_token() == SECRET  # what the Trainer's push (token=None) authenticates with
    saved = io.BytesIO()
    torch.save(training_args, saved)  # as the Trainer writes training_args.bin
    assert SECRET.encode() not in saved.getvalue()
    recorded = json.dumps(run_metadata(args, argv, {}))
    assert SECRET not in recorded and "<HUB_TOKEN>" in recorded
    assert SECRET not in str(training_args) + training_args.to_json_string()


def test_a_hub_token_in_a_config_file_is_refused(tmp_path):
    config = tmp_path / "mine.json"
    config.write_text(json.dumps({"output_dir": str(tmp_path / "run"), "hub_token": SECRET}))
    with pytest.raises(SystemExit) as refused:
        parse_arguments([str(config)])
    assert refused.value.code == (
        f"error: {config}: hub_token in a config file is shared and committed with it; remove "
        "it and give the token as HF_TOKEN or with `hf auth login` (docs/reliability.md)."
    )


@needs_squad
@pytest.mark.slow
def test_a_run_given_a_hub_token_writes_it_nowhere(tmp_path):
    output, results = tmp_path / "run", tmp_path / "results"
    result = run_qa(
        "--output_dir", output, "--results_dir", results, "--features_cache_dir",
        tmp_path / "cache", f"--hub_token={SECRET}", "--max_train_samples", 16,
    )  # fmt: skip
    assert SECRET not in result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert output / "training_args.bin" in written and results / "run_config.json" in written
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []
