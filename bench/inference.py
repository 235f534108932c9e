"""Inference on a CPU: fp32, int8 linear layers and bf16 autocast, side by side with their scores.

    python bench/inference.py MODEL_DIR --data v1=FILE --data v2=FILE [--variants fp32,int8]

For each variant and data file: windows per second of the model (tokenising and post-processing
excluded, the same for every variant) and the official scores, with the folder's own settings
(qa_settings.json: window size, SQuAD 2.0 and its stored no-answer threshold). int8 is PyTorch's
dynamic quantisation of every linear layer (weights int8, activations quantised per batch).

Opt-in, for CPUs without bf16: onnx, the fp32 model exported to ONNX and run by ONNX Runtime, and
onnx-int8, that file with ONNX Runtime's dynamic quantisation (int8 weights); they need the dev
requirements (onnxruntime, onnx, onnxscript): --variants fp32,onnx,onnx-int8.

Writes OUT.json and OUT.md (default results/benches/inference/inference).
"""

import argparse
import inspect
import os
import sys
import tempfile
import time
import warnings
from types import SimpleNamespace

import torch

from qa import ROOT
from qa.answer_settings import answering_settings
from qa.atomic import write_json_atomic, write_text_atomic
from qa.features import prepare_eval_features
from qa.hardware import precision_path
from qa.metric import load_metric_functions, metric_inputs
from qa.postprocess import postprocess_qa_predictions
from qa.predict import MODEL_INPUTS, window_logits
from qa.squad_data import load_squad_file, resolve_data_path
from qa.threads import cpu_threads

ONNX_VARIANTS = ("onnx", "onnx-int8")
VARIANTS = ("fp32", "int8", "bf16", *ONNX_VARIANTS)


def load_variant(model_dir: str, variant: str, scratch: str | None = None):
    """The model of a variant; the ONNX ones write their files in scratch (a folder) once."""
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    if variant in ONNX_VARIANTS:
        return OnnxModel(onnx_file(model, variant, scratch), cpu_threads(0))
    if variant == "int8":
        with warnings.catch_warnings():  # torch 2.13 warns that these tensors are deprecated
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
    return model


def onnxruntime_module():
    """onnxruntime, or a one-line error: it and the exporter's onnxscript are dev requirements."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  torch.onnx.export(dynamo=True) imports it
    except ImportError as err:
        raise SystemExit(
            f"error: the ONNX variants need {err.name}: pip install -r requirements-dev.txt"
        ) from None
    return onnxruntime


def onnx_file(model, variant: str, folder: str) -> str:
    """The ONNX file of a variant in folder: the fp32 export, or its int8 quantisation."""
    fp32 = os.path.join(folder, "model.onnx")
    if not os.path.exists(fp32):
        export_onnx(model, fp32)
    if variant == "onnx":
        return fp32
    int8 = os.path.join(folder, "model-int8.onnx")
    if not os.path.exists(int8):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    return int8


def export_onnx(model, path: str) -> None:
    """The model as an ONNX graph (its inputs -> start_logits, end_logits), batch and length free.

    The dynamo exporter (torch.export), torch's default since 2.9, binds the graph's inputs by
    keyword name; the legacy TorchScript one names them by position in forward()'s order, and
    silently mislabels them (wrong logits) if the order given differs. Legacy is also deprecated."""
    names = [n for n in MODEL_INPUTS if n in inspect.signature(model.forward).parameters]
    # batch 2 and length 16: torch.export would fix a size of 1 as a constant
    example = {n: torch.ones(2, 16, dtype=torch.long) for n in names}
    if "attention_mask" in example:
        example["attention_mask"][1, 12:] = 0  # a padded window, so the mask is in the graph
    batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with warnings.catch_warnings():  # notes that the inputs share the dims named here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (), path, kwargs=example, dynamo=True, verbose=False,
            output_names=["start_logits", "end_logits"],
            dynamic_shapes={n: {0: batch, 1: length} for n in names},
        )  # fmt: skip


class OnnxModel:
    """An ONNX Runtime session (CPU, fp32 or int8) that window_logits calls as the torch model."""

    device = torch.device("cpu")

    def __init__(self, path: str, threads: int):
        ort = onnxruntime_module()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # as many as torch uses, to compare like with like
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def __call__(self, **batch):
        start, end = self.session.run(
            ["start_logits", "end_logits"], {k: v.numpy() for k, v in batch.items()}
        )
        return SimpleNamespace(
            start_logits=torch.from_numpy(start), end_logits=torch.from_numpy(end)
        )


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
    parser.add_argument("--variants", default="fp32,int8,bf16", help=", ".join(VARIANTS))
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
