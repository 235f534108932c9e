"""Sample rendering: markers land on the right characters and nest."""

from qa.samples import mark_excerpt

CONTEXT = "The tentacles are fringed with tentilla, little tentacles."


def span(text):
    start = CONTEXT.index(text)
    return start, start + len(text)


def test_gold_and_prediction_marks():
    gold, pred = span("tentilla"), span("fringed")
    marked = mark_excerpt(CONTEXT, [(*gold, "[", "]"), (*pred, "**", "**")])
    assert marked == "The tentacles are **fringed** with [tentilla], little tentacles."


def test_equal_spans_nest():
    both = span("tentilla")
    marked = mark_excerpt(CONTEXT, [(*both, "[", "]"), (*both, "**", "**")])
    assert "[**tentilla**]" in marked


def test_span_inside_another_nests():
    marked = mark_excerpt(
        CONTEXT, [(*span("with tentilla"), "[", "]"), (*span("tentilla"), "**", "**")]
    )
    assert "[with **tentilla**]" in marked


def test_no_answer_prediction_leaves_the_context_unmarked():
    assert mark_excerpt(CONTEXT, [(-1, -1, "**", "**")]) == CONTEXT
