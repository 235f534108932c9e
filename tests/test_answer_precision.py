"""tools/predict_qa.py answers in bf16 where the hardware has it unless told otherwise."""

import pytest

import predict_qa
import qa.serve.predict


@pytest.mark.parametrize(
    "flags, hardware_has_bf16, expected",
    [
        ([], True, True),
        ([], False, False),
        (["--bf16", "false"], True, False),
        (["--bf16"], False, True),
        (["--bf16", "true"], False, True),
    ],
)
def test_predict_uses_bf16_by_default_where_the_hardware_has_it(
    monkeypatch, tmp_path, flags, hardware_has_bf16, expected
):
    asked = {}

    def answer_questions(model, examples, bf16, **settings):
        asked["bf16"] = bf16
        raise SystemExit("stop after choosing")

    monkeypatch.setattr(qa.serve.predict, "bf16_available", lambda: hardware_has_bf16)
    monkeypatch.setattr(predict_qa, "answer_questions", answer_questions)
    with pytest.raises(SystemExit, match="stop after choosing"):
        predict_qa.main([str(tmp_path), "--context", "Paris is in France.",
                         "--question", "Where is Paris?", *flags])  # fmt: skip
    assert asked["bf16"] is expected
