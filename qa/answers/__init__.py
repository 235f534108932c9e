"""Stage 2, answers: window logits to one answer span per question (postprocess), the answer
settings a trained folder keeps (settings), and the prediction files (prediction_files).
"""
