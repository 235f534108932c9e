"""Search a recipe's learning rate, warmup and weight decay (`make search`).

    python search_qa.py configs/search-squad20pct.json [--n_trials 12 ...]

Reads a run_qa.py config plus the search settings of qa/run/search.py. Each trial trains the
recipe's model afresh on the config's questions (a small train_fraction) and is scored by the
F1 of one evaluation after training, on the first eval_questions_during_training dev questions
(the learning curve's questions); Trainer.hyperparameter_search runs the trials through optuna.
The study lives in output_dir/optuna.db: a search stopped by Ctrl-C, a kill or a crash keeps
its finished trials, and the same command runs only the trials still missing. At the end, and
after an interrupt, output_dir holds trials.md and trials.json (every trial) and
best_config.json, the best trial's settings as a config extending best_config_base.
"""

import qa.machine.threads  # noqa: F401  # isort: skip  (thread settings before torch loads)

import logging
import os
import sys
from functools import partial

from qa.answers.postprocess import AnswerRules
from qa.data.load import SquadDataError
from qa.run.config import parse_arguments_with, starting_threshold, without_secrets
from qa.run.interrupt import exit_on_sigterm
from qa.run.outputs import setup_logging
from qa.run.search import (
    SearchArguments,
    check_search,
    open_study,
    search_space,
    study_arguments,
    trial_score,
    trials_left,
    write_best_config,
    write_trials,
)
from qa.run.storage import stop_cleanly_when_the_disk_is_full
from run_qa import (
    load_checked_model,
    load_examples,
    load_model,
    make_collator,
    make_windows,
    start_run,
)
from trainer_qa import QuestionAnsweringTrainer

logger = logging.getLogger("run_qa.search")


def main(argv: list[str]) -> dict:
    """Parse, start, data, windows, trainer, trials, tables. Returns the best config's path
    and the number of trials run by this call."""
    args, (search,) = parse_arguments_with(argv, (SearchArguments,), script="search_qa.py")
    check_search(search, args.training, argv[0] if argv else "flags")
    with stop_cleanly_when_the_disk_is_full(args.training, args.run):
        setup_logging(args.training)
        start = start_run(args)
        logger.info("Search: %s", " ".join(without_secrets(argv)))
        examples, checksums = load_examples(args)
        examples = examples._replace(eval=learning_curve_questions(examples.eval, args.data))
        model_path, tokenizer, _ = load_checked_model(args)
        windows = make_windows(args, examples, tokenizer, checksums)
        trainer = search_trainer(args, model_path, tokenizer, examples, windows, start.log_file)
        output_dir = args.training.output_dir
        study = open_study(output_dir, search)
        left = trials_left(study, search)
        logger.info("%d of %d trials to run", left, search.n_trials)
        try:
            if left:
                trainer.hyperparameter_search(
                    hp_space=partial(search_space, search),
                    compute_objective=trial_score,
                    n_trials=left,
                    direction="maximize",
                    backend="optuna",
                    **study_arguments(output_dir, search),
                )
        except KeyboardInterrupt:
            logger.warning("Interrupted: finished trials are kept; the same command goes on.")
            raise SystemExit(130) from None
        finally:
            study = open_study(output_dir, search)
            write_trials(output_dir, study)
            best = write_best_config(study, search, output_dir)
    return {"best_config": best, "trials_run": left}


def learning_curve_questions(eval_examples, data_args):
    """The dev questions a trial is scored on: the first eval_questions_during_training (all of
    them when it is 0), as the learning curve of run_qa.py scores them."""
    count = data_args.eval_questions_during_training or len(eval_examples)
    return eval_examples.select(range(min(count, len(eval_examples))))


def fresh_model(model_args, training_args):
    """A new model from the recipe's checkpoint, with a fresh span head: where each trial starts."""
    return load_model(model_args, training_args)[2]


def search_trainer(args, model_path, tokenizer, examples, windows, log_file):
    """The Trainer whose model_init starts every trial afresh, scoring the learning-curve
    questions."""
    # The Trainer casts each drawn value to the type of the setting it replaces: an integer
    # warmup_steps would turn every drawn fraction into 0.
    args.training.warmup_steps = float(args.training.warmup_steps)
    threshold = starting_threshold(args.data, model_path, tuning=False)
    rules = AnswerRules(
        args.data.version_2_with_negative,
        args.data.n_best_size,
        args.data.max_answer_length,
        threshold,
    )
    return QuestionAnsweringTrainer(
        model_init=partial(fresh_model, args.model, args.training),
        args=args.training,
        train_dataset=windows.train,
        eval_dataset=windows.eval,
        eval_examples=examples.eval,
        processing_class=tokenizer,
        data_collator=make_collator(tokenizer, args.data),
        answer_rules=rules,
        callbacks=[log_file] if log_file else None,
    )


if __name__ == "__main__":
    exit_on_sigterm()
    try:
        main(sys.argv[1:])
    except SquadDataError as err:
        raise SystemExit(f"error: {err}") from None
    except SystemExit as stop:
        if stop.code != 130:
            raise
        # Ctrl-C can land while the Trainer starts a worker thread, which then never ends and
        # holds the interpreter at exit; the tables are written, so leave at once.
        logging.shutdown()
        os._exit(130)
