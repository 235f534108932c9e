"""The passages tools/predict_qa.py answers from: refused with a message when they cannot be answered
in bounded time and memory (empty, only spaces, or longer than a book chapter)."""

# About 35,000 words: some 180 windows of 384 tokens, answered in seconds to a minute on a CPU.
# Each window costs a forward pass, so a multi-megabyte paste would run for many minutes.
MAX_PASSAGE_CHARS = 200_000


def passage_problem(context: str) -> str | None:
    """Why this passage is refused, with the fix; None if it can be answered."""
    if not context.strip():
        return "the passage is empty or only spaces; give the text to answer from."
    if len(context) > MAX_PASSAGE_CHARS:
        return (
            f"the passage is {len(context):,} characters; up to {MAX_PASSAGE_CHARS:,} are "
            "answered at a time. Split it into sections and ask each (one record per section "
            "with --file)."
        )
    return None
