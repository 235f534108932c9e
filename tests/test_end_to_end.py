"""One small real run: train the bundled BERT briefly, evaluate, check every output a user relies on."""

import json
import os

import pytest

from helpers.recipe_runner import SQUAD_DIR, needs_squad, refusal, run_qa

pytestmark = [pytest.mark.slow, needs_squad]  # they train, or read ../shared


def test_outputs_are_all_written(smoke_run):
    output, results, _ = smoke_run
    for name in [
        "model.safetensors",
        "tokenizer.json",
        "config.json",
        "train_results.json",
        "eval_results.json",
        "predictions.json",
        "nbest_predictions.json",
        "samples.md",
        "samples.json",
        "train.log",
        "log_history.json",
        "run_config.json",
        "all_results.json",
        "README.md",  # the model card
    ]:
        assert (output / name).is_file(), name
    # results_dir gets the small files, never the weights
    assert (results / "all_results.json").is_file() and (results / "samples.md").is_file()
    assert not (results / "model.safetensors").exists()


def test_metrics_predictions_and_log_agree(smoke_run):
    output, _, _ = smoke_run
    metrics = json.loads((output / "all_results.json").read_text())
    assert metrics["eval_examples"] == 32 and metrics["train_examples"] == 64
    assert 0.0 <= metrics["eval_exact_match"] <= metrics["eval_f1"] <= 100.0
    predictions = json.loads((output / "predictions.json").read_text())
    assert len(predictions) == 32 and all(isinstance(v, str) for v in predictions.values())
    log = (output / "train.log").read_text()
    assert "***** Running training *****" in log and '"loss":' in log
    config = json.loads((output / "run_config.json").read_text())
    assert len(config["data_files"]["train"]["sha256"]) == 64
    assert config["versions"]["transformers"]


def test_samples_are_shown_and_consistent(smoke_run):
    output, _, stdout = smoke_run
    samples = json.loads((output / "samples.json").read_text())
    predictions = json.loads((output / "predictions.json").read_text())
    assert len(samples) == 3
    for sample in samples:
        assert sample["prediction"] == predictions[sample["id"]]
        assert 0.0 <= sample["probability"] <= 1.0
        assert sample["exact"] in (0.0, 100.0) and 0.0 <= sample["f1"] <= 100.0
        if sample["prediction"]:
            assert f"**{sample['prediction']}**" in sample["context_excerpt"].replace(
                "[", ""
            ).replace("]", "")
    assert "3 sample predictions from the dev set" in stdout
    assert samples[0]["question"] in stdout


def test_saved_folder_loads_and_answers_with_the_auto_classes(smoke_run):
    # transformers 5 removed pipeline("question-answering"); these classes are what it wrapped.
    import torch
    from datasets import Dataset
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qa.data.windows import prepare_eval_features
    from utils_qa import postprocess_qa_predictions

    output, _, _ = smoke_run
    tokenizer = AutoTokenizer.from_pretrained(output)
    model = AutoModelForQuestionAnswering.from_pretrained(output).eval()
    examples = Dataset.from_dict(
        {"id": ["q"], "question": ["Where is Paris?"], "context": ["Paris is in France."]}
    )
    features = Dataset.from_dict(prepare_eval_features(examples[:], tokenizer, 64, 16))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(features["input_ids"]))
    answer = postprocess_qa_predictions(
        examples, features, logits.start_logits.numpy(), logits.end_logits.numpy()
    )["q"]
    assert answer.text and answer.text in "Paris is in France."


def test_eval_only_run_reproduces_the_scores(smoke_run, tmp_path):
    output, _, _ = smoke_run
    run_qa("--model_name_or_path", output, "--do_train", "false", "--output_dir", tmp_path / "e")
    first = json.loads((output / "eval_results.json").read_text())
    again = json.loads((tmp_path / "e" / "eval_results.json").read_text())
    assert again["eval_f1"] == first["eval_f1"]
    assert again["eval_exact_match"] == first["eval_exact_match"]
    before = (output / "predictions.json").read_text()
    assert (tmp_path / "e" / "predictions.json").read_text() == before


def test_a_finished_run_is_never_overwritten(smoke_run):
    output, results, _ = smoke_run
    before = (output / "all_results.json").read_bytes()
    line = refusal("--output_dir", output, "--results_dir", results)
    assert "already holds a finished run" in line and "overwrite_output_dir" in line
    assert (output / "all_results.json").read_bytes() == before


@pytest.mark.parametrize("dev_file, version_2", [("dev-v1.1.json", False), ("dev-v2.0.json", True)])
def test_fast_post_processing_matches_the_reference_on_real_logits(smoke_run, dev_file, version_2):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding

    from helpers.recipe_runner import SQUAD_DIR
    from helpers.reference import mismatched_questions, reference_postprocess
    from qa.data.load import load_squad_file
    from qa.data.windows import prepare_eval_features
    from utils_qa import postprocess_qa_predictions

    output, _, _ = smoke_run
    tokenizer = AutoTokenizer.from_pretrained(output)
    model = AutoModelForQuestionAnswering.from_pretrained(output).eval()
    examples = load_squad_file(str(SQUAD_DIR / dev_file), allow_unanswerable=version_2)
    examples = examples.select(range(0, len(examples), len(examples) // 40))
    # Short windows, so that questions spread over several of them.
    features = examples.map(
        prepare_eval_features,
        batched=True,
        remove_columns=examples.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_length": 128, "doc_stride": 48},
    )
    assert len(features) > 2 * len(examples)
    inputs = DataCollatorWithPadding(tokenizer)(
        [
            {"input_ids": i, "token_type_ids": t}
            for i, t in zip(features["input_ids"], features["token_type_ids"])
        ]
    )
    with torch.no_grad():
        logits = model(**inputs)
    start, end = logits.start_logits.numpy(), logits.end_logits.numpy()
    fast = postprocess_qa_predictions(examples, features, start, end, version_2, 20, 30)
    slow = reference_postprocess(examples, features, start, end, version_2, 20, 30, 0.0)
    assert mismatched_questions(fast, slow) == []


def test_predict_script_answers_like_the_evaluation(smoke_run, tmp_path):
    """tools/predict_qa.py on dev questions gives the answers the evaluation wrote (fp32 on both sides)."""
    import predict_qa
    from helpers.recipe_runner import SQUAD_DIR

    output, _, _ = smoke_run
    run_qa("--model_name_or_path", output, "--do_train", "false", "--bf16", "false",
           "--output_dir", tmp_path / "eval")  # fmt: skip
    expected = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    dev = json.loads((SQUAD_DIR / "dev-v1.1.json").read_text())
    questions = [
        {
            "id": qa["id"],
            "question": qa["question"],
            "context": p["context"],
            "answers": {"text": [], "answer_start": []},
        }
        for p in dev["data"][0]["paragraphs"]
        for qa in p["qas"]
    ][: len(expected)]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in questions))
    answers = predict_qa.main(
        [str(output), "--file", str(path), "--max_seq_length", "256", "--doc_stride", "96",
         "--bf16", "false", "--output", str(tmp_path / "answers.json")]
    )  # fmt: skip
    assert {qid: a.text for qid, a in answers.items()} == expected
    written = json.loads((tmp_path / "answers.json").read_text())
    assert written[questions[0]["id"]]["text"] == expected[questions[0]["id"]]


def test_predict_agrees_with_the_question_answering_pipeline(smoke_run):
    """The saved folder works in pipeline("question-answering") and gives tools/predict_qa.py's answers.

    transformers 5 removed that pipeline, so it runs under transformers 4.57 (make setup puts it
    in .venv/transformers4, sharing torch with the venv). Contexts fit one window, where the
    pipeline's span choice (best product of start and end probabilities) and ours (best sum of
    logits) are the same rule; align_to_words=False keeps the pipeline on token offsets as ours.
    """
    import subprocess
    import sys

    from datasets import Dataset
    from transformers import AutoTokenizer

    from helpers.recipe_runner import ROOT, environment
    from qa.serve.predict import answer_questions

    compat = ROOT / ".venv" / "transformers4"
    if not compat.is_dir() and not os.environ.get("CI"):
        pytest.skip(f"no transformers 4 in {compat} (make setup installs it)")
    output, _, _ = smoke_run
    dev = json.loads((SQUAD_DIR / "dev-v1.1.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(output)
    questions = [
        {"id": qa["id"], "question": qa["question"], "context": p["context"]}
        for article in dev["data"][:4]
        for p in article["paragraphs"][:3]
        for qa in p["qas"][:2]
        if len(tokenizer(qa["question"], p["context"])["input_ids"]) <= 384  # one window
    ][:12]
    script = (
        "import json, sys\n"
        "from transformers import __version__, pipeline\n"
        "assert __version__.startswith('4.'), __version__\n"
        "qa = pipeline('question-answering', model=sys.argv[1], device='cpu')\n"
        "out = {q['id']: qa(question=q['question'], context=q['context'], max_answer_len=30,\n"
        "       max_seq_len=384, doc_stride=128, align_to_words=False) for q in json.load(sys.stdin)}\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(output)],
        input=json.dumps(questions),
        text=True,
        capture_output=True,
        env={**environment(), "PYTHONPATH": str(compat)},
        check=True,
    )
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    ours = answer_questions(output, Dataset.from_list(questions))  # 384 / 128
    assert len(theirs) == len(questions) == 12
    for q in questions:
        answer = theirs[q["id"]]
        assert (answer["start"], answer["end"], answer["answer"]) == (
            ours[q["id"]].start,
            ours[q["id"]].end,
            ours[q["id"]].text,
        ), q["question"]


def test_evaluating_during_training_does_not_change_the_model(smoke_run, tmp_path):
    """The smoke config scores a dev subset every 2 steps; without those evaluations the weights
    must come out bit-identical (an evaluation must not shift the dropout random stream)."""
    output, _, _ = smoke_run
    history = json.loads((output / "log_history.json").read_text())
    steps = max(row["step"] for row in history)
    assert [row["step"] for row in history if "eval_subset_f1" in row] == list(
        range(2, steps + 1, 2)
    )
    run_qa("--output_dir", tmp_path / "quiet", "--eval_strategy", "no")
    quiet = json.loads((tmp_path / "quiet" / "log_history.json").read_text())
    assert not any("eval_subset_f1" in row for row in quiet)
    assert (output / "model.safetensors").read_bytes() == (
        tmp_path / "quiet" / "model.safetensors"
    ).read_bytes()


def test_plots_and_tensorboard_logs_are_written(smoke_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import qa.run.plots

    output, results, _ = smoke_run
    for folder in (output, results):  # the run draws them; the results copy carries them
        for name in ("training_curves.png", "dev_scores.png"):
            assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = EventAccumulator(str(next((output / "runs").iterdir()))).Reload()
    history = json.loads((output / "log_history.json").read_text())
    steps = max(row["step"] for row in history)
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, steps + 1))  # every step
    assert [e.step for e in events.Scalars("eval/subset_f1")] == list(range(2, steps + 1, 2))
    # make plots draws any run folder again, elsewhere if asked
    written = qa.run.plots.draw_run_plots(str(results), str(tmp_path))
    assert sorted(p.rsplit("/", 1)[1] for p in written) == ["dev_scores.png", "training_curves.png"]


def test_plots_of_a_missing_or_broken_history_stop_with_a_message(tmp_path):
    import plot_qa

    with pytest.raises(
        SystemExit, match="log_history.json not found: give a folder written by run_qa.py"
    ):
        plot_qa.main([str(tmp_path)])
    (tmp_path / "log_history.json").write_text("[{")
    with pytest.raises(SystemExit, match="is not valid JSON"):
        plot_qa.main([str(tmp_path)])


def test_plots_of_an_evaluation_only_run(tmp_path):
    import qa.run.plots

    scores = {"eval_exact": 30.9, "eval_f1": 36.8, "eval_HasAns_f1": 73.4, "eval_NoAns_f1": 0.2}
    (tmp_path / "log_history.json").write_text(json.dumps([{**scores, "step": 0}]))
    written = qa.run.plots.draw_run_plots(str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in written] == ["dev_scores.png"]  # no training, no curves
    assert (tmp_path / "dev_scores.png").read_bytes()[:4] == b"\x89PNG"
