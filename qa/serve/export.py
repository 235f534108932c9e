"""A trained folder exported for deployment: an ONNX graph that ONNX Runtime answers with.

    python tools/export_qa.py runs/squad20pct [--quantize int8]      # or: make export

Which library does what: torch.onnx.export (the dynamo exporter: torch.export, then onnxscript
writes the graph, in onnx's format) turns the fine-tuned model into MODEL/onnx/model.onnx, batch
and length free; onnxruntime runs it, and its quantize_dynamic writes model_quantized.onnx (int8
weights, activations quantised per batch). The folder also gets the tokenizer, config.json and
qa_settings.json, so it answers on its own: `predict`, the demo and `make eval` take it (or the
trained folder) with --backend onnxruntime or onnxruntime-int8, through the same windows and
post-processing as the PyTorch model. The layout is the Hub's usual one (onnx/model.onnx,
onnx/model_quantized.onnx), and `make push` uploads it.
"""

import inspect
import json
import logging
import os
import shutil
import warnings
from contextlib import contextmanager

import numpy as np
import torch
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from qa.answers.settings import answering_settings, load_settings, save_settings
from qa.serve.model_files import resolve_model_path

EXPORT_FOLDER = "onnx"
MANIFEST = "export.json"  # marks a folder this module wrote: only such a one is replaced
ONNX_FILES = {"onnxruntime": "model.onnx", "onnxruntime-int8": "model_quantized.onnx"}
BACKENDS = ("torch", *ONNX_FILES)
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
# fp32 ONNX Runtime vs PyTorch on the probe: kernels differ in summation order only.
LOGIT_TOLERANCE = 1e-3
PROBE = (  # a question pair of two lengths: padding, token types and the mask all count
    ("Where was tea first drunk?", "Tea was first drunk as a medicine in China."),
    ("Who?", "Portuguese priests and merchants brought tea to Europe in the 16th century."),
)


def add_backend_argument(parser) -> None:
    parser.add_argument(
        "--backend",
        default="torch",
        choices=BACKENDS,
        help="torch (default): the trained weights; onnxruntime / onnxruntime-int8: the folder's "
        "ONNX export (make export; QUANTIZE=int8 for the int8 one), the folder or its onnx/",
    )


def onnxruntime_module():
    """onnxruntime, or a one-line error naming what to install (the exporter needs onnxscript)."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  torch.onnx.export(dynamo=True) imports it
    except ImportError as err:
        raise SystemExit(
            f"error: ONNX export and inference need {err.name}: pip install -r requirements.txt"
        ) from None
    return onnxruntime


@contextmanager
def quiet_logs(*names: str):
    """Loggers `names` ("" the root) say only errors: the exporter notes that torchvision is
    absent, the quantiser advises a pre-processing step; neither concerns a BERT."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(model, path: str) -> None:
    """The model as one ONNX file (its inputs -> start_logits, end_logits), batch and length free.

    The dynamo exporter (torch.export), torch's default since 2.9, binds the graph's inputs by
    keyword name; the legacy TorchScript one names them by position in forward()'s order, and
    silently mislabels them (wrong logits) if the order given differs. Legacy is also deprecated."""
    onnxruntime_module()
    names = [n for n in MODEL_INPUTS if n in inspect.signature(model.forward).parameters]
    # batch 2 and length 16: torch.export would fix a size of 1 as a constant
    example = {n: torch.ones(2, 16, dtype=torch.long) for n in names}
    if "attention_mask" in example:
        example["attention_mask"][1, 12:] = 0  # a padded window, so the mask is in the graph
    batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence")
    # warnings: notes that the inputs share the dims named here
    with warnings.catch_warnings(), quiet_logs("torch.onnx"):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (),
            path,
            kwargs=example,
            dynamo=True,
            verbose=False,
            external_data=False,
            output_names=["start_logits", "end_logits"],
            dynamic_shapes={n: {0: batch, 1: length} for n in names},
        )


def quantize_int8(fp32_path: str, int8_path: str) -> None:
    """ONNX Runtime's dynamic quantisation: int8 weights of the matrix products."""
    onnxruntime_module()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_logs(""):
        quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)


class OnnxModel(torch.nn.Module):
    """An ONNX Runtime session (CPU) in the torch model's place: window_logits and the Trainer
    (make eval) call it as they call the model, and read its config.json."""

    def __init__(self, path: str, threads: int = 0):
        super().__init__()
        from transformers import AutoConfig

        ort = onnxruntime_module()
        options = ort.SessionOptions()
        # As many threads as torch uses, so that the two compare like with like.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.config = AutoConfig.from_pretrained(os.path.dirname(path))

    @property
    def device(self):
        return torch.device("cpu")  # where the session reads its inputs from

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        feed = {k: v.cpu().numpy().astype(np.int64) for k, v in given.items() if k in self.inputs}
        start, end = self.session.run(["start_logits", "end_logits"], feed)
        return QuestionAnsweringModelOutput(
            start_logits=torch.from_numpy(start).to(input_ids.device),
            end_logits=torch.from_numpy(end).to(input_ids.device),
        )


def export_folder_of(folder: str, backend: str) -> str:
    """The folder holding backend's ONNX file: `folder` itself or its onnx/; else one line."""
    name = ONNX_FILES[backend]
    for candidate in (folder, os.path.join(folder, EXPORT_FOLDER)):
        if os.path.isfile(os.path.join(candidate, name)):
            return candidate
    quantize = " QUANTIZE=int8" if backend == "onnxruntime-int8" else ""
    raise SystemExit(
        f"error: {folder} has no ONNX export ({EXPORT_FOLDER}/{name}) for --backend {backend}: "
        f"run `make export MODEL={folder}{quantize}` first, or use --backend torch."
    )


def answering_model(folder: str, backend: str = "torch"):
    """(folder with the tokenizer and settings, model) that answers for backend."""
    if backend == "torch":
        from transformers import AutoModelForQuestionAnswering

        model = AutoModelForQuestionAnswering.from_pretrained(folder)
        return folder, model.to("cuda") if torch.cuda.is_available() else model
    exported = export_folder_of(folder, backend)
    return exported, OnnxModel(os.path.join(exported, ONNX_FILES[backend]))


def exported_for_evaluation(model_args, training_args):
    """run_qa.py's (folder, tokenizer, model) when an export is evaluated: the export folder."""
    from transformers import AutoTokenizer

    if training_args.do_train:
        raise SystemExit(
            f"error: --backend {model_args.backend} evaluates an export and cannot train: set "
            "--do_train false (make eval does), or use --backend torch."
        )
    folder = resolve_model_path(model_args.model_name_or_path)
    folder, model = answering_model(folder, model_args.backend)
    return folder, AutoTokenizer.from_pretrained(folder), model


def probe_logits(model, tokenizer) -> np.ndarray:
    """Start and end logits of the probe pairs, stacked: what an export must reproduce."""
    questions, contexts = zip(*PROBE)
    batch = tokenizer(list(questions), list(contexts), padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if k in MODEL_INPUTS})
    mask = batch["attention_mask"].numpy().astype(bool)
    return np.stack([out.start_logits.numpy()[mask], out.end_logits.numpy()[mask]])


def load_trained(folder: str):
    """(model in fp32 eval mode, tokenizer) of a trained folder; one line if it has none."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise SystemExit(
            f"error: {folder} is no trained model folder (it has no config.json): give the "
            "output folder of a training run, e.g. runs/squad20pct."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForQuestionAnswering.from_pretrained(folder, dtype=torch.float32)
    except OSError as err:
        raise SystemExit(
            f"error: {folder} is not a trained model folder (config, weights, tokenizer): "
            f"{str(err).splitlines()[0]} Give the output folder of a training run."
        ) from None
    return model.eval(), tokenizer


def write_export(model, tokenizer, folder: str, out: str, quantize: str | None) -> dict:
    """Write the ONNX file(s), tokenizer, config and answer settings into `out` (a new folder);
    the manifest, with how far each file's logits are from PyTorch's on the probe."""
    fp32 = os.path.join(out, ONNX_FILES["onnxruntime"])
    export_onnx(model, fp32)
    files = {"onnxruntime": fp32}
    if quantize == "int8":
        files["onnxruntime-int8"] = os.path.join(out, ONNX_FILES["onnxruntime-int8"])
        quantize_int8(fp32, files["onnxruntime-int8"])
    tokenizer.save_pretrained(out)
    model.config.save_pretrained(out)
    save_settings(out, {**load_settings(folder), **answering_settings(folder)})
    expected = probe_logits(model, tokenizer)
    differences = {
        backend: float(np.abs(probe_logits(OnnxModel(path), tokenizer) - expected).max())
        for backend, path in files.items()
    }
    if differences["onnxruntime"] > LOGIT_TOLERANCE:  # a wrong graph must not be deployed
        raise SystemExit(
            f"error: the ONNX export of {folder} answers differently from PyTorch (logits up to "
            f"{differences['onnxruntime']:.3g} apart); nothing was kept. Report it with the "
            "torch and onnxscript versions."
        )
    manifest = {
        "source": os.path.abspath(folder),
        "files": {b: os.path.basename(p) for b, p in files.items()},
        "quantize": quantize,
        "max_logit_difference_vs_torch": differences,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime_module().__version__,
    }
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
    return manifest


def export_folder(folder: str, quantize: str | None = None, out: str | None = None):
    """Export `folder` into `out` (default FOLDER/onnx), replacing only an earlier export;
    (out, the export's manifest)."""
    out = out or os.path.join(folder, EXPORT_FOLDER)
    if os.path.exists(out) and not os.path.isfile(os.path.join(out, MANIFEST)):
        raise SystemExit(
            f"error: {out} exists and is no export of this recipe (no {MANIFEST}); move it "
            "away, or give another --out."
        )
    model, tokenizer = load_trained(folder)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    # Written beside, then swapped in: an interrupted export leaves the earlier one whole.
    partial = os.path.join(parent, f".{os.path.basename(out)}-partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        manifest = write_export(model, tokenizer, folder, partial, quantize)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out, manifest
