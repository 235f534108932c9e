"""Stage 3, scoring: the offline SQuAD metric (metric, squad_qa/), the no-answer threshold and
its curve (abstention), and the samples shown after evaluation (samples).
"""
