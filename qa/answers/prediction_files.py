"""The answer files an evaluation writes: predictions.json (the official scorer's input), the
n-best lists and, for SQuAD 2.0, each question's null odds and best real span."""

import os

from qa.atomic import write_json_atomic


def write_prediction_files(output_dir, answers, version_2_with_negative, stage="eval"):
    """predictions.json ({id: text}, the official scorer's input), nbest, and 2.0 null odds."""
    prefix = "" if stage == "eval" else f"{stage}_"
    write_json_atomic(
        os.path.join(output_dir, f"{prefix}predictions.json"),
        {k: v.text for k, v in answers.items()},
    )
    nbest = {
        k: [
            {
                "text": c.text,
                "probability": round(c.probability, 6),
                "score": round(c.score, 4),
                "start": c.start,
                "end": c.end,
            }
            for c in v.nbest
        ]
        for k, v in answers.items()
    }
    write_json_atomic(
        os.path.join(output_dir, f"{prefix}nbest_predictions.json"), nbest, indent=None
    )
    if version_2_with_negative:
        # With the best span of every question, the threshold can be swept or changed later
        # (tools/compare_qa.py) without the model: no answer where null odds > threshold.
        write_json_atomic(
            os.path.join(output_dir, f"{prefix}null_odds.json"),
            {k: v.null_score_diff for k, v in answers.items()},
        )
        write_json_atomic(
            os.path.join(output_dir, f"{prefix}span_predictions.json"),
            {k: best_span_text(v) for k, v in answers.items()},
        )


def best_span_text(answer) -> str:
    """The best-scoring real span of a question's n-best, the null answer passed over."""
    return next((c.text for c in answer.nbest if c.start >= 0), "")
