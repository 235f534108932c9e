"""Unanswerable training questions made from the 2.0 recipe's own training data.

The 2.0 recipe trains on the headline's SQuAD 1.1 questions (train_fraction 0.2, seed 42) plus
the training part of the dev-v2.0 article split, whose 2,921 unanswerable questions are all the
real ones there are. This adds the same number of unanswerable questions five ways, one file
each, so that runs on the same budget can be compared:

* perturbed.json: answerable questions with one term swapped (qa/data/perturb.py) so their passage
  no longer answers them; the original answers are kept as `plausible_answers`;
* other-paragraph.json: answerable questions paired with another paragraph of their article
  that does not contain their answer (easy negatives);
* similar-paragraph.json: the same, but the other paragraph is the one of the article that
  shares the most with the question (hard negatives);
* copies.json: more copies of the training part's real unanswerable questions;
* perturbed-similar.json: both kinds that teach, half each: the first half of perturbed.json's
  swaps, then hard negatives made from other questions.

    python -m qa.data.standin [--out $SQUAD_V2_STANDIN_DIR] [--results_dir DIR]

Only $SQUAD_DIR/train-v1.1.json and $SQUAD_V2_SPLIT_DIR/train.json are read (and the split's
manifest, for the titles it must not meet): never the tuning or held-out part. The output is a
function of those inputs and this code, rebuilt only when one of them changes.
"""

import argparse
import hashlib
import math
import os
import random
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from qa.atomic import atomic_folder, write_json_atomic
from qa.data import perturb
from qa.data.load import (
    SquadDataError,
    load_squad_file,
    resolve_data_path,
    sha256_of,
    take_fraction,
)
from qa.user_files import read_json_file

V1_TRAIN = "$SQUAD_DIR/train-v1.1.json"
SPLIT_TRAIN = "$SQUAD_V2_SPLIT_DIR/train.json"
OUT = "$SQUAD_V2_STANDIN_DIR"
# The headline run's sample of train-v1.1 (configs/squad20pct.json; a test checks they agree).
FRACTION, SEED = 0.2, 42
# Each file adds COPIES x the real unanswerables: the budget's unanswerable count then matches
# 20% of the official 2.0 training set (8,700 of 26,064 questions) within 1%.
COPIES = 2
MODES = ("perturbed", "other-paragraph", "similar-paragraph", "copies", "perturbed-similar")
MANIFEST = "manifest.json"
FORBIDDEN_PARTS = ("tune", "heldout")
# Words from closed lists: each is swapped in at most as often as answerable training questions
# already hold it, so the word alone never says "no answer".
CAPPED_KINDS = ("antonym", "month")
CODE = (Path(__file__), Path(perturb.__file__))


def code_sha256() -> str:
    digest = hashlib.sha256()
    for path in CODE:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def refuse_held_out(path: str) -> None:
    """The stand-in must never see the parts it is scored or tuned on."""
    if Path(path).stem in FORBIDDEN_PARTS:
        raise SquadDataError(
            f"{path}: the stand-in is made from the split's training part only; give "
            f"$SQUAD_V2_SPLIT_DIR/train.json, never {Path(path).name}."
        )


def forbidden_titles(split_train: str) -> set[str]:
    """Titles of the tuning and held-out articles, from the split's manifest beside train.json."""
    manifest_path = os.path.join(os.path.dirname(split_train), MANIFEST)
    manifest = read_json_file(
        manifest_path,
        SquadDataError,
        "Build the split first: make split (python -m qa.data.split).",
    )
    try:
        return {t for part in FORBIDDEN_PARTS for t in manifest["parts"][part]["titles"]}
    except (KeyError, TypeError):
        raise SquadDataError(
            f"{manifest_path}: not a split manifest (no parts/tune/titles); rebuild it with "
            "python -m qa.data.split."
        ) from None


def _answer_list(answers: dict) -> list[dict]:
    return [
        {"text": t, "answer_start": s} for t, s in zip(answers["text"], answers["answer_start"])
    ]


def read_inputs(v1_train: str, split_train: str, fraction=FRACTION, seed=SEED):
    """(answerable questions to build from, the split's real unanswerables, input summary).

    Each question: {"id", "title", "context", "question", "answers": [{text, answer_start}]}.
    """
    refuse_held_out(v1_train)
    refuse_held_out(split_train)
    banned = forbidden_titles(split_train)
    v1 = take_fraction(load_squad_file(v1_train), fraction, seed)
    split_rows = load_squad_file(split_train, allow_unanswerable=True)
    for path, rows in ((v1_train, v1), (split_train, split_rows)):
        met = sorted(set(rows["title"]) & banned)
        if met:
            raise SquadDataError(
                f"{path}: holds articles of the split's tuning or held-out part, e.g. {met[:3]}; "
                "the stand-in may only use the training part and train-v1.1.json."
            )
    pool = [
        {**row, "answers": _answer_list(row["answers"])}
        for rows in (v1, split_rows)
        for row in rows
        if row["answers"]["text"]
    ]
    document = read_json_file(split_train, SquadDataError)
    unanswerable = [
        {**qa, "title": article["title"], "context": paragraph["context"]}
        for article in document["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
        if qa.get("is_impossible")
    ]
    summary = {
        os.path.basename(v1_train): {
            "sha256": sha256_of(v1_train),
            "train_fraction": fraction,
            "seed": seed,
            "questions": len(v1),
        },
        "split " + os.path.basename(split_train): {
            "sha256": sha256_of(split_train),
            "questions": len(split_rows),
            "answerable": len(split_rows) - len(unanswerable),
            "unanswerable": len(unanswerable),
        },
    }
    return pool, unanswerable, summary


def _articles(pool: list[dict]) -> dict[str, dict[str, int]]:
    """{title: {context: its paragraph number}}, paragraphs in the order they first appear."""
    articles = {}
    for row in pool:
        paragraphs = articles.setdefault(row["title"], {})
        paragraphs.setdefault(row["context"], len(paragraphs))
    return articles


def _record(row: dict, suffix: str, context: str, **fields) -> dict:
    return {
        "id": f"{row['id']}-{suffix}",
        "title": row["title"],
        "context": context,
        "question": fields.pop("question", row["question"]),
        "answers": [],
        "is_impossible": True,
        **fields,
    }


def perturbed(pool: list[dict], count: int, seed: int = SEED) -> list[dict]:
    """`count` questions with one term swapped, drawn in a seeded order from those that have one.

    A question with terms of several kinds picks the kind at random, then the term and the
    replacement: so rarer kinds (dates, antonyms) are not drowned by names.
    """
    articles = _articles(pool)
    index = {title: perturb.Article(list(paragraphs)) for title, paragraphs in articles.items()}
    caps = Counter(w for row in pool for w in perturb.words(row["question"]))
    used = Counter()
    made = []
    for i in np.random.default_rng(seed).permutation(len(pool)).tolist():
        if len(made) == count:
            break
        row = pool[i]
        article = index[row["title"]]
        options = article.options(articles[row["title"]][row["context"]], row["question"])
        pick = random.Random(f"{seed}:{row['id']}")  # str seeds hash the same in every process
        kinds = sorted({term.kind for term, _ in options})
        pick.shuffle(kinds)
        for kind in kinds:
            term, choices = pick.choice([o for o in options if o[0].kind == kind])
            if kind in CAPPED_KINDS:
                choices = [c for c in choices if used[c.lower()] < caps[c.lower()]]
            if not choices:
                continue
            replacement = pick.choice(choices)
            used[replacement.lower()] += 1
            swap = perturb.apply(row["question"], term, replacement)
            made.append(
                _record(
                    row,
                    "swap-1",
                    row["context"],
                    question=swap.question,
                    plausible_answers=row["answers"],
                    standin={
                        "source_id": row["id"],
                        "kind": kind,
                        "original": swap.original,
                        "replacement": replacement,
                        "at": term.start,  # where in the question it was swapped
                    },
                )
            )
            break
    return _enough(made, count, "perturbed")


def _without_answer(row: dict, articles: dict[str, dict[str, int]]) -> list[str]:
    """The other paragraphs of the question's article that hold none of its answers, in order."""
    answers = [a["text"].lower() for a in row["answers"]]
    return [
        context
        for context in articles[row["title"]]
        if context != row["context"] and not any(a in context.lower() for a in answers)
    ]


def other_paragraph(pool: list[dict], count: int, seed: int = SEED) -> list[dict]:
    """`count` questions, each moved to another paragraph of its article lacking its answer."""
    articles = _articles(pool)
    made = []
    for i in np.random.default_rng(seed).permutation(len(pool)).tolist():
        if len(made) == count:
            break
        row = pool[i]
        if others := _without_answer(row, articles):
            context = random.Random(f"{seed}:{row['id']}").choice(others)
            fields = {"standin": {"source_id": row["id"], "kind": "other-paragraph"}}
            made.append(_record(row, "other-1", context, **fields))
    return _enough(made, count, "other-paragraph")


# Words that say how a question asks, not what about: they tie a question to no paragraph.
_QUESTION_WORDS = frozenset(
    re.findall(
        r"\w+",
        "what which who whom whose when where why how did does do is was were are the a an of "
        "in on at to for by with from as and or that this",
    )
)


def _terms(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower())) - _QUESTION_WORDS


def paragraph_weights(paragraph_terms: list[set[str]]) -> dict[str, float]:
    """Each word's inverse paragraph frequency in an article: log((paragraphs + 1) / paragraphs
    with it). A word of every paragraph (the article's subject, "the") weighs little, so two
    paragraphs are alike mostly through what sets them apart from the rest of their article."""
    counts = Counter(word for terms in paragraph_terms for word in terms)
    return {word: math.log((len(paragraph_terms) + 1) / n) for word, n in counts.items()}


def likeness(question_terms: set[str], paragraph_terms: set[str], weights: dict) -> float:
    """The summed weight of the question's words that the paragraph also holds (fsum: exact,
    so the same in any order the set gives them, whatever the interpreter's hash seed)."""
    return math.fsum(weights.get(word, 0.0) for word in question_terms & paragraph_terms)


def similar_paragraph(
    pool: list[dict], count: int, seed: int = SEED, skip: frozenset = frozenset()
) -> list[dict]:
    """`count` questions, each moved to the paragraph of its article that lacks its answer and
    is most like it (the earliest of equals); a question that shares no word with any such
    paragraph is skipped, since a paragraph on another topic would be an easy negative, and so
    is a question whose id is in `skip` (one already used by another kind of negative)."""
    articles = _articles(pool)
    terms = {context: _terms(context) for paragraphs in articles.values() for context in paragraphs}
    weights = {
        title: paragraph_weights([terms[context] for context in paragraphs])
        for title, paragraphs in articles.items()
    }
    made = []
    for i in np.random.default_rng(seed).permutation(len(pool)).tolist():
        if len(made) == count:
            break
        row = pool[i]
        if row["id"] in skip:
            continue
        asked = _terms(row["question"])
        best, best_score = None, 0.0
        for context in _without_answer(row, articles):
            score = likeness(asked, terms[context], weights[row["title"]])
            if score > best_score:
                best, best_score = context, score
        if best is not None:
            standin = {"source_id": row["id"], "kind": "similar-paragraph"}
            made.append(_record(row, "similar-1", best, standin=standin))
    return _enough(made, count, "similar-paragraph")


def perturbed_and_similar(
    pool: list[dict], count: int, swaps: list[dict], seed: int = SEED
) -> list[dict]:
    """`count` questions, half of each kind that teaches: the first half of `swaps` (what
    perturbed() made, so those questions are perturbed.json's own), then hard negatives made
    from questions none of those swaps came from, so no question is used twice."""
    taken = _enough(swaps[: count // 2], count // 2, "perturbed")
    used = frozenset(record["standin"]["source_id"] for record in taken)
    return taken + similar_paragraph(pool, count - len(taken), seed, skip=used)


def copies(unanswerable: list[dict], count: int) -> list[dict]:
    """The real unanswerable questions again, under new ids, until `count` are made."""
    made = []
    for copy in range(1, count // max(1, len(unanswerable)) + 2):
        for qa in unanswerable:
            if len(made) < count:
                fields = {k: v for k, v in qa.items() if k not in ("id", "title", "context")}
                fields["standin"] = {"source_id": qa["id"], "kind": "copy"}
                made.append({**_record(qa, f"copy-{copy}", qa["context"]), **fields})
    return _enough(made, count, "copies")


def _enough(made: list[dict], count: int, mode: str) -> list[dict]:
    if len(made) < count:
        raise SquadDataError(
            f"only {len(made)} {mode} questions could be made, {count} are needed: the training "
            "data is too small for the budget."
        )
    return made


def nested(records: list[dict], pool_order: list[tuple[str, str]], version: str) -> dict:
    """The official SQuAD 2.0 layout; articles and paragraphs in the order of the inputs."""
    rank = {key: n for n, key in enumerate(dict.fromkeys(pool_order))}
    grouped = {}
    for record in records:
        key = (record["title"], record["context"])
        qa = {k: v for k, v in record.items() if k not in ("title", "context")}
        grouped.setdefault(key, []).append(qa)
    data, titles = [], {}
    for (title, context), qas in sorted(grouped.items(), key=lambda item: rank[item[0]]):
        if title not in titles:
            titles[title] = {"title": title, "paragraphs": []}
            data.append(titles[title])
        qas.sort(key=lambda qa: qa["id"])
        titles[title]["paragraphs"].append({"context": context, "qas": qas})
    return {"version": version, "data": data}


def build(v1_train: str, split_train: str, fraction=FRACTION, seed=SEED) -> tuple[dict, dict]:
    """({file name: document}, manifest) for the five modes, in memory."""
    pool, unanswerable, inputs = read_inputs(v1_train, split_train, fraction, seed)
    added = COPIES * len(unanswerable)
    swaps = perturbed(pool, added, seed)
    made = {
        "perturbed": swaps,
        "other-paragraph": other_paragraph(pool, added, seed),
        "similar-paragraph": similar_paragraph(pool, added, seed),
        "copies": copies(unanswerable, added),
        "perturbed-similar": perturbed_and_similar(pool, added, swaps, seed),
    }
    order = [(r["title"], r["context"]) for r in pool + unanswerable]
    documents, files = {}, {}
    for mode, records in made.items():
        documents[f"{mode}.json"] = nested(records, order, f"v2.0-standin-{mode}")
        files[f"{mode}.json"] = {
            "questions": len(records),
            "kinds": dict(sorted(Counter(r["standin"]["kind"] for r in records).items())),
        }
    headline, split = inputs.values()
    budget = {
        "headline_v1.1_questions": headline["questions"],
        "split_train_questions": split["questions"],
        "added_unanswerable_per_file": added,
        "total_questions": headline["questions"] + split["questions"] + added,
        "unanswerable": split["unanswerable"] + added,
    }
    budget["unanswerable_share"] = round(budget["unanswerable"] / budget["total_questions"], 4)
    manifest = {"inputs": inputs, "seed": seed, "copies": COPIES, "budget": budget, "files": files}
    return documents, manifest


def standin_is_current(out_dir: str, inputs: dict, code: str) -> bool:
    try:
        manifest = read_json_file(os.path.join(out_dir, MANIFEST))
    except ValueError:
        return False
    if manifest.get("code_sha256") != code or manifest.get("inputs_sha256") != inputs:
        return False
    for name, info in manifest.get("files", {}).items():
        path = os.path.join(out_dir, name)
        if not os.path.isfile(path) or sha256_of(path) != info.get("sha256"):
            return False
    return set(manifest.get("files", {})) == {f"{m}.json" for m in MODES}


def ensure_standin(out_dir: str, v1_train=V1_TRAIN, split_train=SPLIT_TRAIN, **params) -> dict:
    """Write the stand-in into out_dir unless the same inputs and code made what is there.

    Built beside out_dir and renamed into place, so the folder is whole or absent.
    """
    v1_path, split_path = resolve_data_path(v1_train), resolve_data_path(split_train)
    refuse_held_out(split_path)
    for path in (v1_path, split_path):
        if not os.path.isfile(path):
            raise SquadDataError(
                f"{path}: no such file. The stand-in is made from train-v1.1.json (SQUAD_DIR) "
                "and the split's train.json: make split, then make standin."
            )
    inputs = {"v1": sha256_of(v1_path), "split_train": sha256_of(split_path), **params}
    code = code_sha256()
    if not standin_is_current(out_dir, inputs, code):
        documents, manifest = build(v1_path, split_path, **params)
        with atomic_folder(out_dir) as staging:
            for name, document in documents.items():
                path = os.path.join(staging, name)
                write_json_atomic(path, document, indent=None)
                manifest["files"][name]["sha256"] = sha256_of(path)
            manifest["inputs_sha256"], manifest["code_sha256"] = inputs, code
            write_json_atomic(os.path.join(staging, MANIFEST), manifest)
    return read_json_file(os.path.join(out_dir, MANIFEST), SquadDataError)


def committed_view(manifest: dict) -> dict:
    """The manifest without what depends on the code's bytes, as committed with the results."""
    return {k: v for k, v in manifest.items() if k not in ("code_sha256", "inputs_sha256")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--v1_train", default=V1_TRAIN, help="the official train-v1.1.json")
    parser.add_argument("--split_train", default=SPLIT_TRAIN, help="the split's training part")
    parser.add_argument("--out", default=OUT, help="folder to write")
    parser.add_argument("--results_dir", help="also copy the manifest here (to commit it)")
    args = parser.parse_args(argv)
    out = resolve_data_path(args.out)
    try:
        manifest = ensure_standin(out, args.v1_train, args.split_train)
    except SquadDataError as err:
        raise SystemExit(f"error: {err}") from None
    if args.results_dir:
        write_json_atomic(os.path.join(args.results_dir, MANIFEST), committed_view(manifest))
    budget = manifest["budget"]
    print(
        f"budget: {budget['total_questions']} questions, {budget['unanswerable']} unanswerable "
        f"({budget['unanswerable_share']:.1%}) with each file"
    )
    for name, info in manifest["files"].items():
        kinds = ", ".join(f"{k} {n}" for k, n in info["kinds"].items())
        print(f"{name:22s} {info['questions']:6d} questions ({kinds}) -> {os.path.join(out, name)}")


if __name__ == "__main__":
    main(sys.argv[1:])
