"""The SQuAD 2.0 stand-in: the perturbation rules, the files made from the training data (unique
ids, counts that add up, the same bytes on every run, nothing from the tuning or held-out part),
the committed manifest and the configs that train on it."""

import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import qa.data.split
import qa.data.standin
from helpers.recipe_runner import ROOT, SQUAD_DIR, needs_squad
from helpers.shared_runs import shared_folder
from qa.data import perturb
from qa.data.load import SquadDataError, load_squad_file
from qa.run.config import parse_arguments

FIXTURES = ROOT / "tests" / "fixtures"
V1_TRAIN = FIXTURES / "squad-v1.1-train-tiny.json"
COMMITTED = ROOT / "results" / "datasets" / "squad-v2-standin" / "manifest.json"
CONFIGS = {m: ROOT / "configs" / f"squad-v2-standin-{m}.json" for m in qa.data.standin.MODES}

RAIL = [p["context"] for p in json.loads(V1_TRAIN.read_text())["data"][0]["paragraphs"]]
OBSERVATORY = [p["context"] for p in json.loads(V1_TRAIN.read_text())["data"][1]["paragraphs"]]


def options(question, paragraphs, index):
    found = perturb.Article(paragraphs).options(index, question)
    return [(term.kind, term.text, choices) for term, choices in found]


# --- the rules: a question and its passage give these swaps, or none -------------------------


@pytest.mark.parametrize(
    "question, paragraphs, index, expected",
    [
        # A year, and a one-word name, each from the article's other paragraphs.
        (
            "In 1871 the railway opened between Kessing and which town?",
            RAIL,
            0,
            [("year", "1871", ["1923", "1965", "1994"]), ("name", "Kessing", ["Dunmore"])],
        ),
        # A month and a year; the other paragraphs' years that this one lacks.
        (
            "Who bought the company in March 1923?",
            RAIL,
            1,
            [("month", "March", ["August"]), ("year", "1923", ["1871", "1965", "1994"])],
        ),
        # A number for a number of as many digits (25, not 140 or 2,310).
        ("Who reopened 12 kilometres of track?", RAIL, 2, [("number", "12", ["25"])]),
        # A three-word name for a three-word name.
        (
            "When did the Harrow Valley Railway open?",
            RAIL,
            0,
            [("name", "Harrow Valley Railway", ["Northern Counties Group"])],
        ),
        # Antonyms come from the list, each only where the passage lacks it.
        (
            "When did the largest telescope see first light?",
            OBSERVATORY,
            1,
            [("antonym", "largest", ["smallest"]), ("antonym", "first", ["last"])],
        ),
        # "Table" is capitalised mid-sentence but also written in lower case: no name.
        (
            "Who built the bridge over the Wend?",
            [
                "The bridge over the Wend was built by Ada Pym.",
                "Visitors read the Table at Castleby; the table lists every toll.",
            ],
            0,
            [("name", "Wend", ["Castleby"])],
        ),
        # "Kessing" twice: swapping one would leave the other; only the year is swapped.
        (
            "Did trains run from Kessing back to Kessing in 1871?",
            RAIL,
            0,
            [("year", "1871", ["1923", "1965", "1994"])],
        ),
        # Nothing to swap: no term of a kind the rules know.
        ("When did passenger services end?", RAIL, 2, []),
        # A name, but the other paragraphs hold no two-word name.
        ("Who founded the Orlen Observatory?", OBSERVATORY, 0, []),
        # "Dunmore" is not in this passage, so the question does not lean on it: not swapped.
        ("Who moved the works to Dunmore?", RAIL, 0, []),
    ],
)
def test_known_questions_give_the_known_swaps(question, paragraphs, index, expected):
    assert options(question, paragraphs, index) == expected


def test_a_term_in_the_passage_is_never_swapped_in():
    # Both other years (1204 and 1651) are in this passage already: no year can stand in.
    passage = "Founded in 1204, the town's bridge fell in 1651 and was rebuilt in 1662."
    other = "Records from 1204 and 1651 survive in the archive at Castleby."
    assert options("When was the bridge rebuilt in 1662?", [passage, other], 0) == []
    # With a year the passage lacks, that one is offered, and only that one.
    other += " A fire struck in 1703."
    assert options("When was the bridge rebuilt in 1662?", [passage, other], 0) == [
        ("year", "1662", ["1703"])
    ]


def test_absence_is_checked_by_value_and_by_every_word_of_a_name():
    assert not perturb.is_absent("number", "1000", "It cost 1,000 pounds.")
    assert not perturb.is_absent("number", "3", "a crew of 03 men")
    assert perturb.is_absent("number", "100", "It cost 1,000 pounds.")
    assert not perturb.is_absent("name", "Margaret Holloway", "designed by Holloway in 1662")
    assert perturb.is_absent("name", "Margaret Holloway", "designed by Hollow in 1662")
    assert not perturb.is_absent("antonym", "last", "the LAST bridge")
    assert perturb.is_absent("antonym", "last", "the bridge lasted")


def test_names_leave_out_sentence_openers_initials_and_months():
    runs = perturb.name_runs(
        "Today the Bank of England opened. In May George W. Bush met Ellen Marsh's aides."
    )
    mid = [term.text for term, opens in runs if not opens]
    assert mid == ["Bank of England", "Ellen Marsh"]
    # After the initial's full stop "Bush" looks like a sentence opener: it counts as a name only
    # where the article also has it mid-sentence.
    assert [term.text for term, opens in runs if opens] == ["Today", "Bush"]


def test_negation_words_are_never_a_perturbation():
    assert not (set(perturb.ANTONYMS) | set(perturb.ANTONYMS.values())) & perturb.NEGATIONS
    term, choices = perturb.Article(RAIL).options(0, "Who built the first locomotive?")[0]
    swap = perturb.apply("Who built the first locomotive?", term, choices[0])
    assert (swap.kind, swap.original, swap.question) == (
        "antonym",
        "first",
        "Who built the last locomotive?",
    )


# --- the stand-in files, made from fixtures -----------------------------------------------------


def write_split(folder: Path) -> Path:
    """A split folder: train.json is the tiny 2.0 file; tune and held-out are two other articles."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_bytes((FIXTURES / "squad-v2.0-tiny.json").read_bytes())
    titles = {"train": ["Bramford", "Lantern fish"]}
    for part, title, qid in (("tune", "Salt marsh", "tune01"), ("heldout", "Glass kiln", "held01")):
        context = f"The {title} article of the {part} part was written in 1777 by Ada Pym."
        qas = [
            {
                "id": qid,
                "question": "Who wrote it?",
                "is_impossible": False,
                "answers": [{"text": "Ada Pym", "answer_start": context.index("Ada Pym")}],
            }
        ]
        doc = {
            "version": "v2.0",
            "data": [{"title": title, "paragraphs": [{"context": context, "qas": qas}]}],
        }
        (folder / f"{part}.json").write_text(json.dumps(doc))
        titles[part] = [title]
    manifest = {"parts": {p: {"titles": t} for p, t in titles.items()}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "train.json"


def make(tmp_path, name="standin", v1=V1_TRAIN):
    split_train = write_split(tmp_path / "split")
    out = tmp_path / name
    manifest = qa.data.standin.ensure_standin(str(out), str(v1), str(split_train), fraction=1.0)
    return out, manifest


def documents(out: Path) -> dict[str, dict]:
    return {f"{m}.json": json.loads((out / f"{m}.json").read_text()) for m in qa.data.standin.MODES}


def questions(document):
    for article in document["data"]:
        for paragraph in article["paragraphs"]:
            for record in paragraph["qas"]:
                yield article["title"], paragraph["context"], record


def inputs_by_id(*paths):
    documents = [json.loads(Path(p).read_text()) for p in paths]
    return {r["id"]: (t, c, r) for d in documents for t, c, r in questions(d)}


def check_standin(out: Path, manifest: dict, sources: dict, budget_parts: tuple[int, int]) -> None:
    """What every stand-in must hold, on fixtures and on the real data alike."""
    headline, split_questions = budget_parts
    added = manifest["budget"]["added_unanswerable_per_file"]
    assert manifest["budget"]["total_questions"] == headline + split_questions + added
    contexts = {c for _, c, _ in sources.values()}
    all_ids = set(sources)
    for name, document in documents(out).items():
        rows = list(questions(document))
        info = manifest["files"][name]
        assert len(rows) == info["questions"] == added == sum(info["kinds"].values())
        ids = [record["id"] for _, _, record in rows]
        # No id twice, none a real one, none another file's; but the half-each file's records
        # are other files' own, ids and all (check_half_and_half).
        taken = set(sources) if name == "perturbed-similar.json" else all_ids
        assert len(set(ids)) == len(ids) and not set(ids) & taken, name
        all_ids |= set(ids)
        assert info["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
        # The loader takes the file as 2.0 data: every question unanswerable, plausible ignored.
        loaded = load_squad_file(str(out / name), allow_unanswerable=True)
        assert len(loaded) == added and all(not a["text"] for a in loaded["answers"])
        for title, context, record in rows:
            assert record["is_impossible"] is True and record["answers"] == []
            assert context in contexts  # no passage from outside the inputs
            source_title, source_context, source = sources[record["standin"]["source_id"]]
            assert title == source_title
            kind = record["standin"]["kind"]
            assert kind in info["kinds"]
            if kind in ("other-paragraph", "similar-paragraph"):  # moved to another paragraph
                assert context != source_context and record["question"] == source["question"]
                assert not any(a["text"].lower() in context.lower() for a in source["answers"])
            elif kind == "copy":
                assert source.get("is_impossible") and record["question"] == source["question"]
                assert record["plausible_answers"] == source["plausible_answers"]
            else:  # a term swapped
                swap = record["standin"]
                assert context == source_context and record["question"] != source["question"]
                assert perturb.is_absent(kind, swap["replacement"], context), record["id"]
                at, new = swap["at"], record["question"]
                undone = new[:at] + swap["original"] + new[at + len(swap["replacement"]) :]
                assert undone == source["question"], record["id"]
                assert record["plausible_answers"] == source["answers"]
                before = perturb.words(source["question"]) & perturb.NEGATIONS
                assert perturb.words(record["question"]) & perturb.NEGATIONS == before
    check_half_and_half(out)


def check_half_and_half(out: Path) -> None:
    """perturbed-similar.json: half perturbed.json's swaps, half hard negatives of other
    questions, each made as its own file makes it."""
    by_name = {
        name: {(t, c, r["id"]): r for t, c, r in questions(doc)}
        for name, doc in documents(out).items()
    }
    mixed = by_name["perturbed-similar.json"]
    hard = {key for key, r in mixed.items() if r["standin"]["kind"] == "similar-paragraph"}
    swapped = mixed.keys() - hard
    assert len(swapped) == len(mixed) // 2 and len(hard) == len(mixed) - len(mixed) // 2
    assert all(mixed[key] == by_name["perturbed.json"][key] for key in swapped)
    alike = hard & by_name["similar-paragraph.json"].keys()  # the file made some of the same
    assert alike and all(mixed[key] == by_name["similar-paragraph.json"][key] for key in alike)
    sources = [r["standin"]["source_id"] for r in mixed.values()]
    assert len(set(sources)) == len(sources)  # no question is used twice


def _pool_row(qid, question, context, answer, title="Harbour"):
    return {
        "id": qid,
        "title": title,
        "context": context,
        "question": question,
        "answers": [{"text": answer, "answer_start": context.index(answer)}],
    }


def test_a_hard_negative_is_the_most_alike_paragraph_that_lacks_the_answer():
    paragraphs = [
        "The Harbour lighthouse was lit by Ada Pym in 1777.",
        "The Harbour lighthouse keeper's cottage burned; its lamp was saved.",  # most alike
        "The Harbour market sells fish every morning.",
        "The Harbour lighthouse was lit again by Ada Pym's son.",  # holds the answer: never
    ]
    pool = [_pool_row("q1", "Who lit the lighthouse lamp?", paragraphs[0], "Ada Pym")]
    pool += [_pool_row(f"f{i}", "Filler?", p, p.split()[1]) for i, p in enumerate(paragraphs)]
    # The fillers' answer ("Harbour") is in every paragraph: only q1 can be moved.
    [made] = qa.data.standin.similar_paragraph(pool, 1)
    assert (made["id"], made["context"]) == ("q1-similar-1", paragraphs[1])
    assert made["question"] == "Who lit the lighthouse lamp?" and made["is_impossible"]
    # A word of every paragraph ("Harbour") adds the same to each: the lamp's paragraph still wins.
    pool[0]["question"] = "Who lit the Harbour lighthouse lamp?"
    [made] = qa.data.standin.similar_paragraph(pool, 1)
    assert made["context"] == paragraphs[1]
    # "lit" and "1777" are only in the two paragraphs the answer rules out: a question sharing
    # nothing with the rest finds no hard negative and is skipped.
    alone = [_pool_row("q2", "Who lit it in 1777?", paragraphs[0], "Ada Pym"), *pool[1:]]
    with pytest.raises(SquadDataError, match="only 0 similar-paragraph questions"):
        qa.data.standin.similar_paragraph(alone, 1)


class _Ordered(set):
    """A set whose intersection lists its words in a given order, as another hash seed might."""

    order = ()

    def __and__(self, other):
        return [w for w in self.order if w in self and w in other]


def test_likeness_is_the_same_in_whatever_order_the_words_come(monkeypatch):
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 in some orders and 0.6 in others: a plain sum would
    # let the interpreter's hash seed decide near-ties, and so the file's bytes.
    weights = {"tide": 0.1, "mill": 0.2, "quay": 0.3}
    scores = set()
    for order in itertools.permutations(weights):
        monkeypatch.setattr(_Ordered, "order", order)
        scores.add(qa.data.standin.likeness(_Ordered(weights), set(weights), weights))
    assert len(scores) == 1


def test_the_stand_in_holds_what_it_promises(tmp_path):
    out, manifest = make(tmp_path)
    sources = inputs_by_id(V1_TRAIN, tmp_path / "split" / "train.json")
    assert manifest["budget"] == {
        "headline_v1.1_questions": 14,
        "split_train_questions": 12,
        "added_unanswerable_per_file": 6,  # twice the three real unanswerables
        "total_questions": 32,
        "unanswerable": 9,
        "unanswerable_share": 0.2812,
    }
    check_standin(out, manifest, sources, (14, 12))
    kinds = manifest["files"]["perturbed.json"]["kinds"]
    assert len(kinds) >= 3, kinds  # more than one rule at work


OPENED = []  # files opened while the spy below listens (audit hooks cannot be removed)
LISTENING = []


def _spy(event, args):
    if event == "open" and LISTENING and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.path.basename(os.fsdecode(args[0])))


sys.addaudithook(_spy)


def test_nothing_of_the_tuning_or_held_out_part_is_read_or_written(tmp_path):
    split_train = write_split(tmp_path / "split")
    out = tmp_path / "standin"
    OPENED.clear()
    LISTENING.append(True)  # every open() in the process: builtins, io, os, pathlib alike
    try:
        qa.data.standin.ensure_standin(str(out), str(V1_TRAIN), str(split_train), fraction=1.0)
    finally:
        LISTENING.clear()
    assert {"train.json", "manifest.json", "squad-v1.1-train-tiny.json"} <= set(OPENED)
    assert not {"tune.json", "heldout.json"} & set(OPENED)
    text = "".join((out / f"{m}.json").read_text() for m in qa.data.standin.MODES)
    for part in ("tune", "heldout"):
        held = json.loads((tmp_path / "split" / f"{part}.json").read_text())
        for title, context, record in questions(held):
            assert title not in text and context not in text and record["id"] not in text


def test_the_held_out_part_is_refused_by_name_and_by_title(tmp_path):
    split_train = write_split(tmp_path / "split")
    for part in ("tune", "heldout"):
        with pytest.raises(SquadDataError, match="training part only"):
            qa.data.standin.ensure_standin(
                str(tmp_path / "out"), str(V1_TRAIN), str(split_train.with_name(f"{part}.json"))
            )
    # The v1.1 tiny file holds "Lantern fish", which is here the held-out part's article.
    manifest = json.loads((tmp_path / "split" / "manifest.json").read_text())
    manifest["parts"]["heldout"]["titles"] = ["Lantern fish"]
    manifest["parts"]["train"]["titles"] = ["Bramford"]
    (tmp_path / "split" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SquadDataError, match="tuning or held-out part, e.g. \\['Lantern fish'\\]"):
        qa.data.standin.ensure_standin(
            str(tmp_path / "out"),
            str(FIXTURES / "squad-v1.1-tiny.json"),
            str(split_train),
            fraction=1.0,
        )
    assert not (tmp_path / "out").exists()


def test_missing_inputs_name_the_file_and_the_fix(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SquadDataError, match="nope/train.json: no such file.*make split"):
        qa.data.standin.ensure_standin(
            str(out), str(V1_TRAIN), str(tmp_path / "nope" / "train.json")
        )
    split_train = write_split(tmp_path / "split")
    (tmp_path / "split" / "manifest.json").unlink()
    with pytest.raises(SquadDataError, match="split/manifest.json: no such file.*make split"):
        qa.data.standin.ensure_standin(str(out), str(V1_TRAIN), str(split_train))
    assert not out.exists()


def test_the_same_files_come_out_of_every_run(tmp_path):
    split_train = write_split(tmp_path / "split")
    digests = []
    for run, hash_seed in enumerate(("1", "2")):
        code = (
            "import sys, qa.data.standin; "
            "qa.data.standin.ensure_standin(sys.argv[1], sys.argv[2], sys.argv[3], fraction=1.0)"
        )
        out = tmp_path / f"run{run}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}  # set order must not matter
        subprocess.run(
            [sys.executable, "-c", code, out, V1_TRAIN, split_train], env=env, check=True
        )
        digests.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert digests[0] == digests[1]


def test_it_is_rebuilt_only_when_an_input_changes(tmp_path, monkeypatch):
    out, first = make(tmp_path)
    built = []
    real_build = qa.data.standin.build
    monkeypatch.setattr(
        qa.data.standin, "build", lambda *a, **k: built.append(1) or real_build(*a, **k)
    )
    split_train = tmp_path / "split" / "train.json"
    qa.data.standin.ensure_standin(str(out), str(V1_TRAIN), str(split_train), fraction=1.0)
    assert built == []
    changed = tmp_path / "v1.json"
    document = json.loads(V1_TRAIN.read_text())
    document["data"][0]["paragraphs"][0]["qas"][2]["question"] = "Who built the first engine?"
    changed.write_text(json.dumps(document))
    second = qa.data.standin.ensure_standin(str(out), str(changed), str(split_train), fraction=1.0)
    assert built == [1]
    assert (
        second["inputs"]["v1.json"]["sha256"]
        != first["inputs"]["squad-v1.1-train-tiny.json"]["sha256"]
    )


def test_a_build_that_fails_leaves_the_old_stand_in_whole(tmp_path, monkeypatch):
    out, _ = make(tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    writes = []

    def failing_write(path, *args, **kwargs):
        writes.append(path)
        if len(writes) == 2:
            raise OSError("disk full")
        return real_write(path, *args, **kwargs)

    real_write = qa.data.standin.write_json_atomic
    monkeypatch.setattr(qa.data.standin, "write_json_atomic", failing_write)
    with pytest.raises(OSError, match="disk full"):
        qa.data.standin.ensure_standin(
            str(out), str(V1_TRAIN), str(tmp_path / "split" / "train.json"), fraction=1.0, seed=7
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split", "standin"]  # no staging left


def test_the_stand_in_draws_the_headline_sample():
    headline = json.loads((ROOT / "configs" / "squad20pct.json").read_text())
    assert (headline["train_fraction"], headline["seed"]) == (
        qa.data.standin.FRACTION,
        qa.data.standin.SEED,
    )


# --- the committed manifest and the configs -----------------------------------------------------


def test_the_committed_budget_adds_up():
    manifest = json.loads(COMMITTED.read_text())
    budget, split = manifest["budget"], manifest["inputs"]["split train.json"]
    assert budget["headline_v1.1_questions"] == 17520
    assert split["questions"] == split["answerable"] + split["unanswerable"] == 6023
    assert budget["added_unanswerable_per_file"] == qa.data.standin.COPIES * split["unanswerable"]
    assert budget["total_questions"] == 17520 + 6023 + budget["added_unanswerable_per_file"]
    assert budget["unanswerable"] == split["unanswerable"] + budget["added_unanswerable_per_file"]
    for name, info in manifest["files"].items():
        assert (
            info["questions"]
            == sum(info["kinds"].values())
            == budget["added_unanswerable_per_file"]
        ), name


@pytest.mark.parametrize("mode", qa.data.standin.MODES)
def test_each_control_config_is_the_x3_run_on_the_stand_in_with_headline_defaults(mode):
    model_args, data_args, _, training_args = parse_arguments([str(CONFIGS[mode])])
    _, x3_data, _, x3_training = parse_arguments(
        [str(ROOT / "configs" / "squad-v2-devsplit-x3.json")]
    )
    assert data_args.extra_train_files == [
        "$SQUAD_V2_SPLIT_DIR/train.json",
        f"$SQUAD_V2_STANDIN_DIR/{mode}.json",
    ]
    assert data_args.extra_train_repeats == 1  # the budget: every file once
    assert (data_args.train_file, data_args.train_fraction) == (x3_data.train_file, 0.2)
    assert (model_args.attention_dropout, model_args.hidden_dropout) == (0.0, 0.0)
    assert training_args.per_device_eval_batch_size == 16
    for key in ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "seed"):
        assert getattr(training_args, key) == getattr(x3_training, key), key
    assert (data_args.threshold_file, data_args.validation_file) == (
        x3_data.threshold_file,
        x3_data.validation_file,
    )


# --- on the real data ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_standin(tmp_path_factory):
    """The split and the stand-in as a control run builds them on demand, before it loads any
    data (run_qa.prepare_split); the same files as `make split` and `make standin` (the
    committed manifest was written by the latter)."""
    import run_qa

    def build(folder):
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SQUAD_DIR", str(SQUAD_DIR))
            env.setenv("SQUAD_V2_SPLIT_DIR", str(folder / "split"))
            env.setenv("SQUAD_V2_STANDIN_DIR", str(folder / "standin"))
            _, data_args, _, training_args = parse_arguments(
                [str(CONFIGS["perturbed"]), "--do_eval", "false"]
            )
            run_qa.prepare_split(data_args, training_args)

    folder = shared_folder(tmp_path_factory, "real-standin", build)
    out = folder / "standin"
    return folder, out, json.loads((out / qa.data.standin.MANIFEST).read_text())


@needs_squad
@pytest.mark.slow
def test_the_committed_manifest_is_what_the_real_data_gives(real_standin):
    folder, out, manifest = real_standin
    assert qa.data.standin.committed_view(manifest) == json.loads(COMMITTED.read_text())
    sources = inputs_by_id(SQUAD_DIR / "train-v1.1.json", folder / "split" / "train.json")
    check_standin(out, manifest, sources, (17520, 6023))
    made = [
        r
        for m in qa.data.standin.MODES
        for r in questions(json.loads((out / f"{m}.json").read_text()))
    ]
    made_ids = {r["id"] for _, _, r in made} | {r["standin"]["source_id"] for _, _, r in made}
    made_contexts = {c for _, c, _ in made}
    for part in ("tune", "heldout"):
        held = list(questions(json.loads((folder / "split" / f"{part}.json").read_text())))
        assert not {r["id"] for _, _, r in held} & made_ids, part
        assert not {c for _, c, _ in held} & made_contexts, part


@pytest.fixture
def standin_env(real_standin, monkeypatch):
    """The real stand-in, with the variables the configs read pointing at it."""
    folder, out, manifest = real_standin
    monkeypatch.setenv("SQUAD_DIR", str(SQUAD_DIR))
    monkeypatch.setenv("SQUAD_V2_SPLIT_DIR", str(folder / "split"))
    monkeypatch.setenv("SQUAD_V2_STANDIN_DIR", str(out))
    return real_standin


@needs_squad
@pytest.mark.slow
def test_each_control_config_trains_on_the_budget(standin_env):
    import qa.data.load

    manifest = standin_env[2]
    for mode, config in CONFIGS.items():
        model_args, data_args, _, training_args = parse_arguments(
            [str(config), "--do_eval", "false"]
        )
        train = qa.data.load.load_raw_datasets(data_args, model_args, training_args)[0]["train"]
        assert len(train) == manifest["budget"]["total_questions"] == 29385, mode
        unanswerable = sum(not a["text"] for a in train["answers"])
        assert unanswerable == manifest["budget"]["unanswerable"] == 8763, mode


@needs_squad
@pytest.mark.slow
def test_a_second_seed_trains_on_the_questions_the_standin_was_made_from(standin_env):
    import qa.data.load

    def training_ids(*overrides: str) -> list[str]:
        args = parse_arguments([str(CONFIGS["perturbed"]), "--do_eval", "false", *overrides])
        return qa.data.load.load_raw_datasets(args.data, args.model, args.training)[0]["train"][
            "id"
        ]

    first = training_ids()
    assert training_ids("--seed", "43", "--train_fraction_seed", "42") == first
    assert training_ids("--seed", "43") != first  # the seed alone draws other v1.1 questions


@needs_squad
@pytest.mark.slow
def test_a_control_run_builds_its_standin_on_demand(real_standin):
    """`make train CONFIG=configs/squad-v2-standin-perturbed.json` on a fresh checkout: the run
    itself builds the split and then the stand-in (real_standin is built that way), the files
    `make standin` makes."""
    folder, out, manifest = real_standin
    assert (folder / "split" / "train.json").is_file()
    assert qa.data.standin.committed_view(manifest) == json.loads(COMMITTED.read_text())
    for name, info in manifest["files"].items():
        assert info["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
