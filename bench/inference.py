"""Inference on a CPU: PyTorch fp32, int8 and bf16, ONNX Runtime fp32 and int8, with their scores.

    python bench/inference.py MODEL_DIR --data v1=FILE --data v2=FILE [--variants fp32,onnx]

For each variant and data file: questions per second of the whole answer (tokenising, the
model, post-processing), windows per second of the model alone (the rest is the same for every
variant) and the official scores, with the folder's own settings (qa_settings.json: window size,
SQuAD 2.0 and its stored no-answer threshold). int8 is PyTorch's dynamic quantisation of every
linear layer (weights int8, activations quantised per batch). onnx and onnx-int8 are what `make
export QUANTIZE=int8` deploys (qa/serve/export.py), written afresh from the weights into a scratch
folder and run by ONNX Runtime as `--backend onnxruntime` and `onnxruntime-int8` run them.

Writes OUT.json and OUT.md (default results/benches/inference/inference).
"""

import argparse
import os
import sys
import tempfile
import time
import warnings

import torch

from qa import ROOT
from qa.answers.postprocess import postprocess_qa_predictions
from qa.answers.settings import answering_settings
from qa.atomic import write_json_atomic, write_text_atomic
from qa.data.load import load_squad_file, resolve_data_path
from qa.data.windows import prepare_eval_features
from qa.machine.hardware import precision_path
from qa.machine.threads import cpu_threads
from qa.scoring.metric import load_metric_functions, metric_inputs
from qa.serve.export import EXPORT_FOLDER, answering_model, export_folder, onnxruntime_module
from qa.serve.predict import window_logits

ONNX_VARIANTS = {"onnx": "onnxruntime", "onnx-int8": "onnxruntime-int8"}  # their backends
VARIANTS = ("fp32", "int8", "bf16", *ONNX_VARIANTS)


def load_variant(model_dir: str, variant: str, scratch: str | None = None):
    """The model of a variant; the ONNX ones are exported into scratch (a folder) once."""
    if variant in ONNX_VARIANTS:
        export = os.path.join(scratch, EXPORT_FOLDER)
        if not os.path.isdir(export):
            export_folder(model_dir, "int8", export)
        return answering_model(export, ONNX_VARIANTS[variant])[1]
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    if variant == "int8":
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
        metric_inputs(answers, version_2),
        refs,
        version_2_with_negative=version_2,
        no_answer_threshold=threshold,
    )


def windows(examples, tokenizer, settings):
    return examples.map(
        prepare_eval_features,
        batched=True,
        remove_columns=examples.column_names,
        load_from_cache_file=False,  # each variant tokenises afresh: its own time
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_seq_length": settings["max_seq_length"],
            "doc_stride": settings["doc_stride"],
        },
    )


def measure(model, tokenizer, examples, settings, bf16: bool) -> dict:
    """Speed and scores of one variant; questions/s counts what a user waits for."""
    warm = windows(examples.select(range(min(64, len(examples)))), tokenizer, settings)
    window_logits(model, tokenizer, warm, 64, bf16)  # kernels chosen, memory touched
    began = time.perf_counter()
    features = windows(examples, tokenizer, settings)
    tokenised = time.perf_counter()
    starts, ends = window_logits(model, tokenizer, features, 64, bf16)
    modelled = time.perf_counter()
    span_settings = (
        "version_2_with_negative",
        "n_best_size",
        "max_answer_length",
        "null_score_diff_threshold",
    )
    answers = postprocess_qa_predictions(
        examples, features, starts, ends, **{k: settings[k] for k in span_settings}
    )
    answered = time.perf_counter()
    result = score(
        examples,
        answers,
        settings["version_2_with_negative"],
        settings["null_score_diff_threshold"],
    )
    keep = ("exact_match", "exact", "f1", "HasAns_f1", "NoAns_f1")
    return {
        "questions": len(examples),
        "windows": len(features),
        "seconds": round(answered - began, 2),
        "model_seconds": round(modelled - tokenised, 2),
        "questions_per_second": round(len(examples) / (answered - began), 2),
        "windows_per_second": round(len(features) / (modelled - tokenised), 2),
        **{k: result[k] for k in keep if k in result},
    }


def markdown(report) -> str:
    lines = [
        f"Model {report['model']}; {report['machine']}; {report['threads']} threads.",
        "",
        "| data | variant | questions/s | windows/s (model) | model speed-up | F1 | F1 change | EM |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, variants in report["results"].items():
        base = variants["fp32"]
        for variant, r in variants.items():
            exact = r.get("exact_match", r.get("exact"))
            lines.append(
                f"| {name} ({r['questions']} questions) | {variant} | {r['questions_per_second']:.1f}"
                f" | {r['windows_per_second']:.1f}"
                f" | {r['windows_per_second'] / base['windows_per_second']:.2f}x | {r['f1']:.2f}"
                f" | {r['f1'] - base['f1']:+.2f} | {exact:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--data", action="append", default=[], help="NAME=FILE (SQuAD JSON)")
    parser.add_argument("--variants", default="fp32,bf16,onnx,onnx-int8", help=", ".join(VARIANTS))
    parser.add_argument(
        "--out", default=str(ROOT / "results" / "benches" / "inference" / "inference")
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if set(args.variants.split(",")) & set(ONNX_VARIANTS):
        onnxruntime_module()  # fails now, not after the torch variants have run
    from transformers import AutoTokenizer

    torch.set_num_threads(cpu_threads(0))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    settings = answering_settings(args.model)
    bf16_ok, machine = precision_path()
    variants = [v for v in args.variants.split(",") if v != "bf16" or bf16_ok]
    results = {}
    with tempfile.TemporaryDirectory(prefix="inference-onnx-") as scratch:
        for item in args.data:
            name, _, path = item.partition("=")
            examples = load_squad_file(resolve_data_path(path), allow_unanswerable=True)
            results[name] = {}
            for variant in variants:
                model = load_variant(args.model, variant, scratch)
                results[name][variant] = measure(
                    model, tokenizer, examples, settings, variant == "bf16"
                )
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
