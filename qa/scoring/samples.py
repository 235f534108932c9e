"""A few dev questions shown the way a person would check them: drawn, scored, marked in their
passage (samples.md, samples.json)."""

import os
import random

from qa.atomic import write_json_atomic, write_text_atomic
from qa.scoring.metric import load_metric_functions

EXCERPT_MARGIN = 160  # characters of context kept on each side of the marked answers


def mark_excerpt(context: str, spans: list[tuple[int, int, str, str]]) -> str:
    """The context around the spans, each span wrapped in its (open, close) markers."""
    real = [s for s in spans if s[0] >= 0]
    if not real:
        return context[: 2 * EXCERPT_MARGIN] + ("…" if len(context) > 2 * EXCERPT_MARGIN else "")
    lo = max(0, min(s[0] for s in real) - EXCERPT_MARGIN)
    hi = min(len(context), max(s[1] for s in real) + EXCERPT_MARGIN)
    # At one position, closes come before opens; the longer span opens first and closes last,
    # so overlapping or equal spans nest: [**same**], not **[same**].
    inserts = []
    for index, (start, end, opening, closing) in enumerate(real):
        inserts += [(start, 1, start - end, index, opening), (end, 0, end - start, -index, closing)]
    text, cursor = [], lo
    for position, *_, marker in sorted(inserts):
        text += [context[cursor:position], marker]
        cursor = position
    text.append(context[cursor:hi])
    return ("…" if lo > 0 else "") + "".join(text) + ("…" if hi < len(context) else "")


def draw_questions(has_answer: list[bool], count: int, seed: int) -> list[int]:
    """`count` question indices drawn reproducibly. Where the set mixes answerable and
    unanswerable questions (SQuAD 2.0), both kinds are drawn in proportion, at least one of each,
    so the samples always show the model answering and abstaining."""
    rng = random.Random(seed)
    count = min(count, len(has_answer))
    answerable = [i for i, has in enumerate(has_answer) if has]
    unanswerable = [i for i, has in enumerate(has_answer) if not has]
    if count < 2 or not answerable or not unanswerable:
        return sorted(rng.sample(range(len(has_answer)), count))
    share = round(count * len(unanswerable) / len(has_answer))
    without = min(len(unanswerable), max(1, min(count - 1, share)))
    with_ = min(len(answerable), count - without)
    return sorted(rng.sample(answerable, with_) + rng.sample(unanswerable, count - with_))


def pick_samples(examples, answers, count, seed, score):
    """`count` dev questions drawn reproducibly, with prediction, gold and per-question scores.

    `score(prediction_text, gold_texts)` returns (exact, f1) in percent.
    """
    has_answer = [bool(a["text"]) for a in examples["answers"]]
    chosen = draw_questions(has_answer, count, seed)
    samples = []
    for index in chosen:
        example = examples[index]
        answer = answers[example["id"]]
        golds = example["answers"]
        gold_spans = [(s, s + len(t)) for s, t in zip(golds["answer_start"], golds["text"])]
        exact, f1 = score(answer.text, golds["text"])
        marks = [(s, e, "[", "]") for s, e in gold_spans[:1]] + [
            (answer.start, answer.end, "**", "**")
        ]
        samples.append(
            {
                "id": example["id"],
                "title": example["title"],
                "question": example["question"].strip(),
                "context_excerpt": mark_excerpt(example["context"], marks),
                "gold_answers": sorted(set(golds["text"]), key=golds["text"].index) or [""],
                "prediction": answer.text,
                "probability": round(answer.probability, 4),
                "exact": exact,
                "f1": round(f1, 2),
            }
        )
    return samples


def render_markdown(samples) -> str:
    lines = [
        "Context excerpts mark the first gold answer with [brackets] and the prediction in **bold**.",
        "",
    ]
    for number, sample in enumerate(samples, start=1):
        gold = " | ".join(f'"{t}"' for t in sample["gold_answers"])
        lines += [
            f"### {number}. {sample['question']}",
            "",
            f"*{sample['title']}* (`{sample['id']}`)",
            "",
            f"> {sample['context_excerpt']}",
            "",
            f'- prediction: "{sample["prediction"]}" (probability {sample["probability"]:.2f})',
            f"- gold: {gold}",
            f"- EM {sample['exact']:.0f}, F1 {sample['f1']:.1f}",
            "",
        ]
    return "\n".join(lines)


def show_samples(examples, answers, v2: bool, run_args, output_dir: str) -> str:
    """Write samples.json/.md for a reproducible draw of dev questions, and print them."""
    squad = load_metric_functions()

    def score(prediction, texts):
        exact, f1 = squad.score_question(prediction, squad.gold_answers(texts, v2), v2)
        return 100.0 * exact, 100.0 * f1

    samples = pick_samples(examples, answers, run_args.num_samples, run_args.samples_seed, score)
    markdown = render_markdown(samples)
    write_json_atomic(os.path.join(output_dir, "samples.json"), samples)
    write_text_atomic(os.path.join(output_dir, "samples.md"), markdown)
    print(f"\n{len(samples)} sample predictions from the dev set:\n\n{markdown}", flush=True)
    return markdown
