"""A run writes only in its own folders: nothing in the working directory it was started from."""

from transformers import BertConfig, BertForQuestionAnswering, TrainingArguments

from trainer_qa import QuestionAnsweringTrainer


def tiny_trainer(output_dir):
    config = BertConfig(
        vocab_size=32,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=8,
    )
    args = TrainingArguments(output_dir=str(output_dir), report_to=["tensorboard"], use_cpu=True)
    return QuestionAnsweringTrainer(model=BertForQuestionAnswering(config), args=args)


def test_an_evaluation_alone_keeps_its_tensorboard_logs_in_output_dir(tmp_path, monkeypatch):
    started_in = tmp_path / "cwd"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    trainer = tiny_trainer(tmp_path / "eval")
    trainer.log({"eval_f1": 50.0})  # what evaluate() logs, with no training begun
    assert list(started_in.iterdir()) == []
    assert list((tmp_path / "eval" / "runs").glob("*/events.out.tfevents.*"))
