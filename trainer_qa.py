"""A Trainer whose evaluate() and predict() score answer spans, not windows.

The model sees windows (features); the metric needs one answer per question (example). After the
usual evaluation loop has gathered the logits of every window from every process, in dataset order
and without the duplicates that distributed padding adds, the main process turns them into answers
by `answer_rules` (qa/answers/postprocess.py) and scores them with the offline SQuAD metric.
"""

import math
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer
from transformers.trainer_utils import PredictionOutput, speed_metrics

from qa.answers.postprocess import AnswerRules
from qa.run.ranks import any_process, decided_on_main
from qa.run.trackers import keep_trackers_in_output_dir
from qa.scoring.metric import TRAINING_EVAL_PREFIX, load_metric, metric_inputs
from qa.serve.hub import hub_errors, push_folder


class LossNotFinite(RuntimeError):
    """The training loss was NaN or infinite, on some process, in optimizer step `step`."""

    def __init__(self, step: int):
        super().__init__(f"the training loss is NaN or infinite at step {step}")
        self.step = step


@contextmanager
def random_state_kept(active: bool):
    """Restore torch's random state afterwards: starting a DataLoader draws from it, so an
    evaluation in the middle of training would otherwise change the dropout masks that follow,
    and the trained model would depend on how often it was evaluated."""
    if not active:
        yield
        return
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class QuestionAnsweringTrainer(Trainer):
    def __init__(
        self,
        *args,
        eval_examples=None,
        answer_rules: AnswerRules | None = None,
        training_eval=None,
        own_model_card: bool = False,
        **kwargs,
    ):
        """`answer_rules`: how logits become answers, and the metric's no-answer threshold.
        `training_eval`: (features, examples) scored instead of the whole dev set by the
        evaluations that eval_strategy schedules during training, logged as eval_subset_*.
        `own_model_card`: the caller writes output_dir/README.md before any upload (run_qa.py
        does, qa/run/card.py), and the Trainer's generic card never replaces it."""
        super().__init__(*args, **kwargs)
        keep_trackers_in_output_dir(self)
        self.eval_examples = eval_examples
        self.answer_rules = answer_rules or AnswerRules()
        self.training_eval = training_eval
        self.own_model_card = own_model_card
        # Seconds spent in evaluations during train(): train_runtime includes them, and the MFU
        # of the optimizer steps alone leaves them out.
        self.seconds_evaluating_in_training = 0.0
        self._loss_not_finite = False  # in some micro-batch of the optimizer step in progress
        self._metric = None  # the SQuAD metric, loaded at the first evaluation

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        # With push_to_hub, Trainer.save_model also uploads ("Model save"), before our card and
        # the scores exist; run_qa pushes once, at the end, with its card. Saving only saves.
        super().save_model(output_dir, _internal_call=True)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # A NaN or infinite loss poisons the update and every step after it, and the Trainer's
        # logging_nan_inf_filter hides it from the log: stop instead. Decided once per optimizer
        # step, after its last backward and before the update, by every process together (one
        # process stopping alone would leave the others waiting at the next all-reduce): no bad
        # update is taken, and no checkpoint of it saved.
        self._loss_not_finite |= not torch.isfinite(loss).all().item()
        if self.accelerator.sync_gradients and any_process(self._loss_not_finite, self.args):
            raise LossNotFinite(self.state.global_step + 1)
        return loss

    def create_model_card(self, *args, **kwargs):
        if not self.own_model_card:
            return super().create_model_card(*args, **kwargs)
        return None  # the caller's card is already in output_dir

    def hub_repo_name(self) -> str:
        return (
            self.hub_model_id
            or self.args.hub_model_id
            or Path(self.args.output_dir).absolute().name
        )

    def init_hf_repo(self, token=None, private=None):
        # With push_to_hub the Trainer creates the repository as it starts: a Hub that cannot be
        # reached or refuses the token stops the run here, in one line, before any training.
        then = "Nothing was trained: fix that, or train without push_to_hub and `make push` later."
        with hub_errors(self.hub_repo_name(), then, token or self.args.hub_token):
            super().init_hf_repo(token, private)

    def push_to_hub(
        self,
        commit_message="End of training",
        blocking=True,
        token=None,
        revision=None,
        private=None,
        **kwargs,
    ):
        """Trainer.push_to_hub, choosing the files as `make push` does (qa/serve/hub.py: no
        per-question dumps, locks or nested folders), and one line if the Hub fails."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        repo, folder = self.hub_repo_name(), self.args.output_dir
        self.create_model_card(model_name=kwargs.pop("model_name", repo.split("/")[-1]), **kwargs)
        self._finish_current_push()  # a checkpoint upload still under way
        then = (
            f"The run is saved in {folder}: `make push MODEL={folder} REPO_ID={repo} "
            "HF_HUB_OFFLINE=0` uploads it later."
        )
        private = self.args.hub_private_repo if private is None else private
        # With push_to_hub set, the repository was made as the Trainer started (hub_model_id).
        return push_folder(
            folder,
            repo,
            commit_message,
            then=then,
            private=private,
            token=token or self.args.hub_token,
            blocking=blocking,
            revision=revision or self.args.hub_revision,
            create=self.hub_model_id is None,
        )

    def _get_eval_sampler(self, eval_dataset):
        # Logits must come back in feature order: never let a length-grouping sampler shuffle them.
        return SequentialSampler(eval_dataset)

    def _answer_spans(self, dataset, examples, description, metric_key_prefix):
        """Run the model over `dataset`, post-process, score; returns (answers, metrics)."""
        dataloader = self.get_eval_dataloader(dataset)
        start_time = time.time()
        # Scoring needs the whole question, so the loop only collects logits.
        output = self.evaluation_loop(
            dataloader,
            description=description,
            prediction_loss_only=False,
            metric_key_prefix=metric_key_prefix,
        )
        model_seconds = time.time() - start_time

        # Every process now holds every window's logits; one process turns them into answers
        # and scores, and the others take its scores (callbacks on every process see the same).
        answers = None  # stays None on the other processes

        def score():
            nonlocal answers
            answers, metrics = self._score(examples, dataset, output.predictions, metric_key_prefix)
            return metrics

        metrics = decided_on_main(self.args, score)
        metrics = {
            (k if k.startswith(f"{metric_key_prefix}_") else f"{metric_key_prefix}_{k}"): v
            for k, v in metrics.items()
        }
        total_batch_size = self.args.eval_batch_size * self.args.world_size
        metrics.update(
            speed_metrics(
                metric_key_prefix,
                start_time,
                num_samples=output.num_samples,
                num_steps=math.ceil(output.num_samples / total_batch_size),
            )
        )
        metrics[f"{metric_key_prefix}_model_seconds"] = round(model_seconds, 3)
        metrics[f"{metric_key_prefix}_examples"] = len(examples)
        metrics[f"{metric_key_prefix}_features"] = len(dataset)
        return answers, metrics

    def _score(self, examples, dataset, logits, metric_key_prefix):
        """(answers, metrics) from the gathered logits: post-processing, then the metric."""
        progress = self.args.process_index == 0 and not self.args.disable_tqdm
        answers = self.answer_rules.answers(examples, dataset, logits, progress=progress)
        return answers, self.score(examples, answers)

    def score(self, examples, answers: dict) -> dict:
        """The SQuAD metric of `answers` against the references of `examples`."""
        if self._metric is None:
            self._metric = load_metric()
        rules = self.answer_rules
        references = [{"id": i, "answers": a} for i, a in zip(examples["id"], examples["answers"])]
        return self._metric.compute(
            predictions=metric_inputs(answers, rules.version_2_with_negative),
            references=references,
            version_2_with_negative=rules.version_2_with_negative,
            no_answer_threshold=rules.null_score_diff_threshold,
        )

    def evaluate(
        self, eval_dataset=None, eval_examples=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        return self.evaluate_answers(eval_dataset, eval_examples, metric_key_prefix)[0]

    def evaluate_answers(self, eval_dataset=None, eval_examples=None, metric_key_prefix="eval"):
        """evaluate(), and the answers it scored: {question id: QuestionPrediction} on the main
        process, None on the others."""
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        examples = self.eval_examples if eval_examples is None else eval_examples
        if eval_dataset is None and self.is_in_train and self.training_eval is not None:
            dataset, examples = self.training_eval
            metric_key_prefix = TRAINING_EVAL_PREFIX
        started = time.time()
        with random_state_kept(self.is_in_train):
            answers, metrics = self._answer_spans(
                dataset, examples, "Evaluation", metric_key_prefix
            )
        if self.is_in_train:
            self.seconds_evaluating_in_training += time.time() - started
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics, answers

    def predict(
        self, predict_dataset, predict_examples, ignore_keys=None, metric_key_prefix="test"
    ):
        """Answers and scores, without logging: predictions are {question id:
        QuestionPrediction} on the main process, None on the others (they post-process nothing)."""
        answers, metrics = self._answer_spans(
            predict_dataset, predict_examples, "Prediction", metric_key_prefix
        )
        return PredictionOutput(predictions=answers, label_ids=None, metrics=metrics)
