"""The recipe's library, one package per stage of the pipeline.

    machine/  precision, threads, memory, attention kernel, FLOPs (below every stage)
    data/     SQuAD files, download, loading, the 2.0 split and stand-in, token windows
    answers/  window logits to answer spans, answer settings, prediction files
    scoring/  the SQuAD metric, the no-answer threshold, samples
    serve/    a trained folder: predict, pipeline, ONNX export, Hub upload
    run/      the training run: arguments, folders, resume, callbacks, outputs

A package imports only those listed above it and the foundations at this level (atomic writes,
reading a user's file); tests/test_layout.py checks it. Installed (editable) by `make setup`, so
the tools, the bench and the tests import `qa.<stage>.<module>` without editing sys.path. The
design's scripts stay at the top: run_qa.py (the recipe), trainer_qa.py (the Trainer subclass),
utils_qa.py (post-processing's entry point).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: configs/, .cache/, runs/
