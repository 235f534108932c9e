"""Export a trained folder for deployment: ONNX (and int8) beside its tokenizer and settings.

    python tools/export_qa.py runs/squad20pct [--quantize int8]      # or: make export

Writes runs/squad20pct/onnx/: model.onnx (batch and length free), with --quantize int8 also
model_quantized.onnx, and the tokenizer, config.json and qa_settings.json, so the folder answers
on its own. Then: make predict|demo|eval ... BACKEND=onnxruntime (or onnxruntime-int8). The
export is refused if ONNX Runtime's logits differ from PyTorch's on a probe (qa/serve/export.py).
"""

import argparse
import os
import sys

from qa.serve.export import export_folder


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a trained output folder (model + tokenizer)")
    parser.add_argument(
        "--quantize", choices=["int8"], help="also write ONNX Runtime's dynamic int8 quantisation"
    )
    parser.add_argument("--out", help="where the export goes (default: MODEL/onnx)")
    args = parser.parse_args(argv)
    out, manifest = export_folder(args.model, args.quantize, args.out)
    print(f"Exported {args.model} to {out}:")
    for backend, name in manifest["files"].items():
        megabytes = os.path.getsize(os.path.join(out, name)) / 1e6
        difference = manifest["max_logit_difference_vs_torch"][backend]
        print(
            f"  {name}: {megabytes:.1f} MB, logits within {difference:.2g} of PyTorch's "
            f"(--backend {backend})"
        )
    print(f"Try it: make predict MODEL={out} BACKEND=onnxruntime CONTEXT=... QUESTION=...")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
