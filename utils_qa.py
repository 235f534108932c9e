"""Post-processing, the design's entry point: window logits to one answer span per question.

The code lives in the package (qa/answers/postprocess.py), where predict, the demo and the bench use it
too; this module keeps the name the recipe's scripts and the Hugging Face example import.
"""

from qa.answers.postprocess import QuestionPrediction, postprocess_qa_predictions

__all__ = ["QuestionPrediction", "postprocess_qa_predictions"]
