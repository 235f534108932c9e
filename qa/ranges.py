"""The values each numeric setting may take: one table for run_qa.py's arguments and for
predict's and the pipeline's settings."""

# Numeric settings and the values they take; run_qa checks them once the flags are parsed, so a
# negative count or size stops the run with its name instead of failing somewhere inside.
RANGES = {
    "max_seq_length": (1, None),
    "pad_to_multiple_of": (1, None),
    "doc_stride": (0, None),
    "n_best_size": (1, None),
    "max_answer_length": (1, None),
    "max_train_samples": (0, None),
    "max_eval_samples": (0, None),
    "num_samples": (0, None),
    "samples_seed": (0, 2**32 - 1),
    "eval_questions_during_training": (0, None),
    "learning_rate": (0, None),
    "num_train_epochs": (0, None),
    "per_device_train_batch_size": (1, None),
    "per_device_eval_batch_size": (1, None),
    "gradient_accumulation_steps": (1, None),
    "warmup_steps": (0, None),
    "weight_decay": (0, None),
    "seed": (0, 2**32 - 1),
    "train_fraction_seed": (0, 2**32 - 1),
    "logging_steps": (0, None),
    "eval_steps": (0, None),
    "save_steps": (0, None),
    "extra_train_repeats": (1, None),
    "cpu_threads": (0, None),
    "attention_dropout": (0, 1),
    "hidden_dropout": (0, 1),
}
