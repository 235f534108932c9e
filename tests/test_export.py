"""make export: the ONNX export answers as the PyTorch model does; missing, it says so in one line."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import qa.serve.export
from helpers.recipe_runner import ROOT, environment, run_qa
from qa.data.load import load_squad_file
from qa.data.windows import prepare_eval_features
from qa.serve.export import (
    OnnxModel,
    answering_model,
    export_folder,
    export_folder_of,
    exported_for_evaluation,
)
from qa.serve.hub import upload_selection
from qa.serve.predict import answer_questions, window_logits
from test_bench_scripts import run_script, tiny_model  # noqa: F401  tiny_model: a fixture

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

FIXTURE = Path(__file__).parent / "fixtures" / "squad-v1.1-tiny.json"


@pytest.fixture(scope="module")
def exported(tiny_model):  # noqa: F811
    """(trained folder, its export folder, manifest): fp32 and int8."""
    out, manifest = export_folder(tiny_model, "int8")
    return tiny_model, out, manifest


def plain_copy(folder, to) -> str:
    """The trained folder without its export."""
    shutil.copytree(folder, to, ignore=shutil.ignore_patterns("onnx"))
    return str(to)


def fixture_logits(folder, backend, batch_size):
    examples = load_squad_file(str(FIXTURE), allow_unanswerable=True)
    export, model = answering_model(folder, backend)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(export)
    features = examples.map(
        prepare_eval_features,
        batched=True,
        remove_columns=examples.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_length": 128, "doc_stride": 32},
    )
    return window_logits(model, tokenizer, features, batch_size, False)


def answers_of(folder, **settings):
    examples = load_squad_file(str(FIXTURE), allow_unanswerable=True)
    found = answer_questions(folder, examples, **settings)
    return {qid: (a.text, a.start, a.end, a.probability) for qid, a in found.items()}


def assert_same_answers(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for qid, (text, start, end, probability) in want.items():
        assert got[qid][:3] == (text, start, end), qid
        assert got[qid][3] == pytest.approx(probability, abs=1e-4)


def test_the_export_holds_what_answering_needs_and_nothing_half_written(exported):
    folder, out, manifest = exported
    assert Path(out) == Path(folder) / "onnx"
    assert {
        "model.onnx",
        "model_quantized.onnx",
        "tokenizer.json",
        "config.json",
        "qa_settings.json",
        "export.json",
    } <= {p.name for p in Path(out).iterdir()}
    assert manifest["max_logit_difference_vs_torch"]["onnxruntime"] < 1e-4
    assert not [p for p in Path(folder).iterdir() if "partial" in p.name]


def test_the_exported_logits_are_pytorchs_at_any_batch_and_length(exported):
    """Windows of several lengths, in batches of 1, 3 and 64: batch and length are free."""
    folder, _, _ = exported
    for batch_size in (1, 3, 64):  # each batch pads to its own longest window
        want = fixture_logits(folder, "torch", batch_size)
        for got, expected in zip(fixture_logits(folder, "onnxruntime", batch_size), want):
            assert np.abs(got - expected).max() < 1e-4


def test_the_export_answers_the_tiny_dev_file_as_pytorch_does(exported):
    folder, out, _ = exported
    want = answers_of(folder)
    assert_same_answers(answers_of(folder, backend="onnxruntime"), want)
    assert_same_answers(answers_of(out, backend="onnxruntime"), want)  # the export folder alone
    int8 = answers_of(folder, backend="onnxruntime-int8")  # runs; its answers may differ
    assert int8.keys() == want.keys()


def test_a_folder_without_an_export_gets_one_line_and_exit_1(exported, tmp_path):
    plain = plain_copy(exported[0], tmp_path / "plain")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "predict_qa.py"), plain, "--backend", "onnxruntime",
         "--context", "Tea was first drunk in China.", "--question", "Where?"],
        capture_output=True, text=True, env=environment(),
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {plain} has no ONNX export (onnx/model.onnx) for --backend onnxruntime: run "
        f"`make export MODEL={plain}` first, or use --backend torch."
    )


def test_an_export_without_int8_says_how_to_make_it(exported, tmp_path):
    plain = plain_copy(exported[0], tmp_path / "plain")
    export_folder(plain)
    with pytest.raises(SystemExit, match=r"onnx/model_quantized\.onnx.*QUANTIZE=int8"):
        export_folder_of(plain, "onnxruntime-int8")


def test_make_eval_with_the_export_refuses_to_train():
    args = SimpleNamespace(backend="onnxruntime", model_name_or_path="unused")
    with pytest.raises(SystemExit, match="evaluates an export and cannot train"):
        exported_for_evaluation(args, SimpleNamespace(do_train=True))


def test_an_onnx_folder_the_recipe_did_not_write_is_left_alone(exported, tmp_path):
    folder = plain_copy(exported[0], tmp_path / "run")
    mine = Path(folder) / "onnx" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("mine")
    with pytest.raises(SystemExit, match=r"onnx exists and is no export of this recipe"):
        export_folder(folder)
    assert [p.name for p in mine.parent.iterdir()] == ["notes.txt"]


def test_an_export_that_answers_differently_is_not_kept(exported, tmp_path, monkeypatch):
    """A graph whose logits drift from PyTorch's is refused, and the earlier export stays."""
    folder = plain_copy(exported[0], tmp_path / "run")
    export_folder(folder)
    before = sorted(p.name for p in (Path(folder) / "onnx").iterdir())
    monkeypatch.setattr(qa.serve.export, "LOGIT_TOLERANCE", -1.0)  # any difference is too much
    with pytest.raises(SystemExit, match="answers differently from PyTorch"):
        export_folder(folder, "int8")
    assert sorted(p.name for p in (Path(folder) / "onnx").iterdir()) == before
    assert sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(".")) == []


def test_make_push_uploads_the_export(exported):
    folder, _, _ = exported
    uploaded = {name for name, _ in upload_selection(folder)[0]}
    assert {
        "onnx/model.onnx",
        "onnx/model_quantized.onnx",
        "onnx/tokenizer.json",
        "onnx/qa_settings.json",
        "model.safetensors",
    } <= uploaded


def test_the_inference_bench_reports_questions_per_second_of_each_default_variant(
    exported, tmp_path, monkeypatch
):
    out = tmp_path / "inference"
    argv = [exported[0], "--data", f"v1={FIXTURE}", "--out", str(out)]
    run_script(ROOT / "bench" / "inference.py", argv, monkeypatch)
    results = json.loads(out.with_suffix(".json").read_text())["results"]["v1"]
    assert {"fp32", "onnx", "onnx-int8"} <= set(results) <= {"fp32", "bf16", "onnx", "onnx-int8"}
    for result in results.values():
        assert result["questions_per_second"] > 0 and result["windows_per_second"] > 0
    assert results["onnx"]["f1"] == pytest.approx(results["fp32"]["f1"])
    assert "| questions/s |" in out.with_suffix(".md").read_text()


def eval_predictions(folder, out, *flags) -> dict:
    """predictions.json of make eval's command on the tiny dev file, in fp32."""
    run_qa("--model_name_or_path", folder, "--do_train", "false", "--validation_file", FIXTURE,
           "--max_eval_samples", 100, "--bf16", "false", "--num_samples", 0, "--report_to", "none",
           "--output_dir", out, "--features_cache_dir", out.parent / "cache", *flags)  # fmt: skip
    return json.loads((out / "predictions.json").read_text())


@pytest.mark.slow  # two evaluations through run_qa.py; the smoke config names ../shared files
def test_make_eval_of_the_export_writes_pytorchs_predictions(exported, tmp_path):
    folder, _, _ = exported
    want = eval_predictions(folder, tmp_path / "torch")
    assert eval_predictions(folder, tmp_path / "onnx", "--backend", "onnxruntime") == want


def test_smoke_model_export_answers_as_pytorch_does(smoke_run, tmp_path, capsys):
    """The smoke run's trained model, whose answers mean something: make export's command (to
    a folder of its own: the shared run stays as it was), then the same answers through ONNX
    Runtime as through PyTorch in fp32."""
    import export_qa

    output, _, _ = smoke_run
    export_qa.main([str(output), "--quantize", "int8", "--out", str(tmp_path / "onnx")])
    printed = capsys.readouterr().out
    assert "model.onnx" in printed and "model_quantized.onnx" in printed
    want = answers_of(str(output))
    assert_same_answers(answers_of(str(tmp_path / "onnx"), backend="onnxruntime"), want)
    for got, expected in zip(
        fixture_logits(str(tmp_path / "onnx"), "onnxruntime", 5),
        fixture_logits(str(output), "torch", 5),
    ):
        assert np.abs(got - expected).max() < 1e-3


def test_predict_and_the_demo_answer_with_the_export(exported, tmp_path):
    """The tools' --backend reaches the model: the CLI's --output and the demo's answer."""
    import demo_qa
    import predict_qa

    folder, _, _ = exported
    written = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.json"
        predict_qa.main([folder, "--file", str(FIXTURE), "--bf16", "false", "--backend", backend,
                         "--output", str(out)])  # fmt: skip
        answers = json.loads(out.read_text())
        written[backend] = {q: (a["text"], a["start"], a["end"]) for q, a in answers.items()}
    assert written["onnxruntime"] == written["torch"]
    context, question = "Tea was first drunk in China.", "Where was tea first drunk?"
    demos = {backend: demo_qa.Demo(folder, backend=backend) for backend in ("torch", "onnxruntime")}
    assert isinstance(demos["onnxruntime"].answerer.model, OnnxModel)
    by_torch, by_onnx = (demo.answer(context, question) for demo in demos.values())
    assert (by_onnx["text"], by_onnx["start"]) == (by_torch["text"], by_torch["start"])
