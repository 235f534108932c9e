"""A stand-in for the SQuAD 2.0 training set: dev-v2.0 split by article into train/tune/held-out.

The official SQuAD 2.0 train set is not always at hand (offline machines); its dev set is, and it
holds the only real unanswerable questions there are. Split by article, so no passage is on two
sides: a training part (mixed with SQuAD 1.1 training questions by the 2.0 config), a small part
that only chooses the no-answer threshold, and a held-out part that is only ever scored.

    python -m qa.data.split [--source $SQUAD_DIR/dev-v2.0.json] [--out $SQUAD_V2_SPLIT_DIR]

run_qa.py builds the split itself when a configured path points into $SQUAD_V2_SPLIT_DIR, so
`accelerate launch run_qa.py configs/squad-v2-devsplit.json` needs no separate step.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile

import numpy as np

from qa.atomic import write_json_atomic
from qa.data.load import SquadDataError, resolve_data_path, sha256_of
from qa.user_files import read_json_file

logger = logging.getLogger("run_qa.split")  # a child of run_qa's logger: lands in train.log

PARTS = ("train", "tune", "heldout")
# Shares of the questions: about half to train on, a small part to tune the threshold, the rest
# to score. Whole articles move, so the realised shares differ a little (see the manifest).
SHARES = (0.50, 0.15, 0.35)
SEED = 42
SOURCE = "$SQUAD_DIR/dev-v2.0.json"
MANIFEST = "manifest.json"


def assign_articles(question_counts: list[int], seed: int = SEED, shares=SHARES) -> list[str]:
    """The part of each article: articles in a seeded random order fill the parts in turn.

    An article goes to the part in which the middle of its questions falls, so each part's share
    of questions is within half an article of its target.
    """
    order = np.random.default_rng(seed).permutation(len(question_counts))
    total = sum(question_counts)
    bounds = np.cumsum(shares)[:-1] * total
    parts, seen = [None] * len(question_counts), 0
    for article in order.tolist():
        middle = seen + question_counts[article] / 2
        parts[article] = PARTS[int(np.searchsorted(bounds, middle, side="right"))]
        seen += question_counts[article]
    return parts


def _questions(article: dict) -> list[dict]:
    return [qa for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def split_document(document: dict, seed: int = SEED) -> tuple[dict[str, dict], dict]:
    """({part: document in the official layout}, the manifest's per-part summary)."""
    articles = document["data"]
    parts = assign_articles([len(_questions(a)) for a in articles], seed)
    documents = {p: {"version": f"{document.get('version', '')}-{p}", "data": []} for p in PARTS}
    for article, part in zip(articles, parts):
        documents[part]["data"].append(article)
    summary = {}
    for part, doc in documents.items():
        questions = [qa for article in doc["data"] for qa in _questions(article)]
        unanswerable = sum(bool(qa.get("is_impossible")) for qa in questions)
        summary[part] = {
            "articles": len(doc["data"]),
            "questions": len(questions),
            "answerable": len(questions) - unanswerable,
            "unanswerable": unanswerable,
            "titles": [article["title"] for article in doc["data"]],
        }
    return documents, summary


def read_source(path: str) -> dict:
    document = read_json_file(
        path, SquadDataError, "Set SQUAD_DIR to the folder holding the official SQuAD files."
    )
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise SquadDataError(
            f"{path}: not in the official SQuAD layout ({{'data': [articles]}}); use the official "
            "dev-v2.0.json."
        )
    return document


def split_is_current(out_dir: str, source_sha256: str, seed: int) -> bool:
    try:
        manifest = read_json_file(os.path.join(out_dir, MANIFEST))
    except ValueError:
        return False
    return (
        manifest.get("source_sha256") == source_sha256
        and manifest.get("seed") == seed
        and manifest.get("shares") == list(SHARES)
        and all(os.path.isfile(os.path.join(out_dir, f"{p}.json")) for p in PARTS)
    )


def ensure_split(out_dir: str, source: str = SOURCE, seed: int = SEED) -> dict:
    """Write the split into out_dir unless an identical one is there; returns its manifest.

    The folder is built beside out_dir and renamed into place, so it is whole or absent.
    """
    source_path = resolve_data_path(source)
    if not os.path.isfile(source_path):
        raise SquadDataError(
            f"{source_path}: no such file. The 2.0 split is made from the official dev-v2.0.json: "
            "set SQUAD_DIR to the folder that holds it."
        )
    source_sha256 = sha256_of(source_path)
    if not split_is_current(out_dir, source_sha256, seed):
        documents, summary = split_document(read_source(source_path), seed)
        parent = os.path.dirname(os.path.abspath(out_dir))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(dir=parent, prefix=".split-")
        try:
            for part, doc in documents.items():
                with open(os.path.join(staging, f"{part}.json"), "w", encoding="utf-8") as out:
                    json.dump(doc, out, ensure_ascii=False)
            manifest = {
                "source": os.path.basename(source_path),
                "source_sha256": source_sha256,
                "seed": seed,
                "shares": list(SHARES),
                "split_by": "article",
                "parts": summary,
            }
            write_json_atomic(os.path.join(staging, MANIFEST), manifest)
            if os.path.isdir(out_dir):
                shutil.rmtree(out_dir)
            os.replace(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("Built the dev-v2.0 article split in %s", out_dir)
    else:
        logger.info("The dev-v2.0 article split in %s is current: reused", out_dir)
    return read_json_file(os.path.join(out_dir, MANIFEST), SquadDataError)


def articles_outside(v1_dev: str, v2_dev: str) -> dict:
    """The SQuAD 1.1 dev articles that are not in dev-v2.0, as a document in the official layout.

    Every article of dev-v2.0 is also in v1.1 dev, with its answerable questions: a model trained
    on the split's training part has seen those passages, so its v1.1 score must leave them out."""
    v2_titles = {article["title"] for article in read_source(v2_dev)["data"]}
    v1 = read_source(v1_dev)
    kept = [a for a in v1["data"] if a["title"] not in v2_titles]
    return {"version": f"{v1.get('version', '')}-outside-v2.0", "data": kept}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=SOURCE, help="the official dev-v2.0.json")
    parser.add_argument("--out", default="$SQUAD_V2_SPLIT_DIR", help="folder to write")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--v1_outside",
        action="store_true",
        help="also write dev-v1.1-outside.json: the v1.1 dev articles not in dev-v2.0",
    )
    args = parser.parse_args(argv)
    out = resolve_data_path(args.out)
    try:
        manifest = ensure_split(out, args.source, args.seed)
        if args.v1_outside:
            document = articles_outside(
                resolve_data_path("$SQUAD_DIR/dev-v1.1.json"), resolve_data_path(args.source)
            )
            write_json_atomic(os.path.join(out, "dev-v1.1-outside.json"), document, indent=None)
            count = sum(len(p["qas"]) for a in document["data"] for p in a["paragraphs"])
            print(f"dev-v1.1 outside dev-v2.0: {len(document['data'])} articles, {count} questions")
    except SquadDataError as err:
        raise SystemExit(f"error: {err}") from None
    for part, info in manifest["parts"].items():
        print(
            f"{part:8s} {info['articles']:3d} articles {info['questions']:6d} questions "
            f"({info['unanswerable']} unanswerable) -> {os.path.join(out, part + '.json')}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
