"""Inference on a CPU: fp32, int8 linear layers and bf16 autocast, side by side with their scores.

    python bench/inference.py MODEL_DIR --data v1=FILE --data v2=FILE [--variants fp32,int8]

For each variant and data file: windows per second of the model (tokenising and post-processing
excluded, the same for every variant) and the official scores, with the folder's own settings
(qa_settings.json: window size, SQuAD 2.0 and its stored no-answer threshold). int8 is PyTorch's
dynamic quantisation of every linear layer (weights int8, activations quantised per batch).

Writes OUT.json and OUT.md (default results/inference/inference).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from qa.config import cpu_threads, precision_path
from qa.data import load_squad_file, resolve_data_path
from qa.features import prepare_eval_features
from qa.io import write_json_atomic, write_text_atomic
from qa.metric import load_metric_functions, metric_inputs
from qa.predict import window_logits
from qa.settings import answering_settings
from utils_qa import postprocess_qa_predictions

ROOT = Path(__file__).resolve().parent.parent


def load_variant(model_dir: str, variant: str):
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    if variant == "int8":
        import warnings

        with warnings.catch_warnings():  # torch 2.13 warns that these tensors are deprecated
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
    return model


def score(examples, answers, version_2: bool, threshold: float) -> dict:
    squad = load_metric_functions()
    refs = [{"id": i, "answers": a} for i, a in zip(examples["id"], examples["answers"])]
    return squad.compute_squad(
        metric_inputs(answers, version_2), refs, version_2_with_negative=version_2,
        no_answer_threshold=threshold,
    )  # fmt: skip


def measure(model, tokenizer, examples, settings, bf16: bool) -> dict:
    features = examples.map(
        prepare_eval_features,
        batched=True,
        remove_columns=examples.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_length": settings["max_seq_length"],
                   "doc_stride": settings["doc_stride"]},
    )  # fmt: skip
    warm = features.select(range(min(64, len(features))))
    window_logits(model, tokenizer, warm, 64, bf16)  # kernels chosen, memory touched
    began = time.perf_counter()
    starts, ends = window_logits(model, tokenizer, features, 64, bf16)
    seconds = time.perf_counter() - began
    span_settings = ("version_2_with_negative", "n_best_size", "max_answer_length",
                     "null_score_diff_threshold")  # fmt: skip
    answers = postprocess_qa_predictions(
        examples, features, starts, ends, **{k: settings[k] for k in span_settings}
    )
    result = score(
        examples, answers, settings["version_2_with_negative"],
        settings["null_score_diff_threshold"],
    )  # fmt: skip
    keep = ("exact_match", "exact", "f1", "HasAns_f1", "NoAns_f1")
    return {
        "questions": len(examples),
        "windows": len(features),
        "model_seconds": round(seconds, 2),
        "windows_per_second": round(len(features) / seconds, 2),
        **{k: result[k] for k in keep if k in result},
    }


def markdown(report) -> str:
    lines = [
        f"Model {report['model']}; {report['machine']}; {report['threads']} threads.",
        "",
        "| data | variant | windows/s | speed-up | F1 | F1 change | EM |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, variants in report["results"].items():
        base = variants["fp32"]
        for variant, r in variants.items():
            exact = r.get("exact_match", r.get("exact"))
            lines.append(
                f"| {name} ({r['questions']} questions) | {variant} | {r['windows_per_second']:.1f}"
                f" | {r['windows_per_second'] / base['windows_per_second']:.2f}x | {r['f1']:.2f}"
                f" | {r['f1'] - base['f1']:+.2f} | {exact:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--data", action="append", default=[], help="NAME=FILE (SQuAD JSON)")
    parser.add_argument("--variants", default="fp32,int8,bf16")
    parser.add_argument("--out", default=str(ROOT / "results" / "inference" / "inference"))
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    torch.set_num_threads(cpu_threads(0))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    settings = answering_settings(args.model)
    bf16_ok, machine = precision_path()
    variants = [v for v in args.variants.split(",") if v != "bf16" or bf16_ok]
    results = {}
    for item in args.data:
        name, _, path = item.partition("=")
        examples = load_squad_file(resolve_data_path(path), allow_unanswerable=True)
        results[name] = {}
        for variant in variants:
            model = load_variant(args.model, variant)
            results[name][variant] = measure(model, tokenizer, examples, settings,
                                             variant == "bf16")  # fmt: skip
            print(name, variant, results[name][variant], flush=True)
    report = {
        "model": os.path.basename(os.path.normpath(args.model)),
        "machine": machine,
        "threads": torch.get_num_threads(),
        "settings": settings,
        "data": dict(item.partition("=")[::2] for item in args.data),
        "results": results,
    }
    write_json_atomic(args.out + ".json", report)
    write_text_atomic(args.out + ".md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main(sys.argv[1:])
