"""Upload a finished run to the Hugging Face Hub, or list exactly what would be uploaded.

    python tools/push_qa.py runs/squad20pct --repo_id you/bert-squad-20pct
    python tools/push_qa.py runs/squad20pct --dry_run
    make push REPO_ID=you/bert-squad-20pct      # make push DRY_RUN=1: list and check only

Both first check the folder: a finished run (all_results.json), weights and tokenizer present,
and a model card (README.md) whose metadata huggingface_hub's own parser accepts: license,
datasets, base model, model-index with the dev scores. The files are chosen by qa/serve/hub.py, as
run_qa.py's push_to_hub chooses them: what loading and judging the model needs; per-question
answer dumps, locks and nested folders (an eval/ of `make eval`) stay home unless --include_all,
checkpoints and _-prefixed files always. huggingface_hub's own filter applies the patterns, so the
dry-run list is the upload. A Hub that cannot be reached or refuses the token: one line.
"""

import argparse
import os
import re
import sys

from huggingface_hub import ModelCard
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from qa.run.checkpoints import FINISHED_MARKER
from qa.serve.hub import push_folder, upload_selection, why_the_hub_failed

REQUIRED = {  # file -> what its absence means
    FINISHED_MARKER: "the run did not finish (run_qa.py writes it last)",
    "config.json": "no model config: not a saved model folder",
    "tokenizer_config.json": "no tokenizer: the model cannot be used without it",
}
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


class PushError(Exception):
    pass


def check_card(folder: str) -> ModelCard:
    """The folder's model card, parsed by huggingface_hub; PushError if the Hub would balk."""
    path = os.path.join(folder, "README.md")
    if not os.path.isfile(path):
        raise PushError(
            f"{path}: no model card. run_qa.py writes one at the end of every training run; "
            "train with this recipe (make train) or add a README.md with Hub metadata."
        )
    try:
        card = ModelCard.load(path)
    except ValueError as err:  # bad YAML, or a model-index huggingface_hub cannot parse
        raise PushError(f"{path}: the card's metadata does not parse: {err}") from None
    data = card.data
    problems = []
    for key in ("license", "datasets", "pipeline_tag"):
        if not getattr(data, key, None):
            problems.append(f"no `{key}`")
    base = data.base_model
    if base and (not HUB_ID.match(str(base)) or os.path.exists(str(base))):
        problems.append(f"base_model {base!r} is not a Hub id (a local path cannot be linked)")
    results = data.eval_results or []
    if not results:  # allowed (a run trained with do_eval false), but worth saying
        print(f"warning: {path} has no model-index results: the card will show no dev scores.")
    for result in results:
        if not isinstance(result.metric_value, (int, float)):
            problems.append(f"metric {result.metric_type} has a non-numeric value")
    if problems:
        raise PushError(
            f"{path}: " + "; ".join(problems) + ". Fix the card's YAML header, or rerun "
            "training so that run_qa.py writes it again."
        )
    return card


def check_repo_id(repo_id: str) -> None:
    """Before the dry run lists it: the default, the folder's name, may be no valid id."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PushError(why_the_hub_failed(err, repo_id, None)) from None


def check_folder(folder: str) -> ModelCard:
    if not os.path.isdir(folder):
        raise PushError(f"{folder}: no such folder. Give a trained run folder (output_dir).")
    for name, meaning in REQUIRED.items():
        if not os.path.isfile(os.path.join(folder, name)):
            raise PushError(f"{os.path.join(folder, name)} missing: {meaning}.")
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHTS):
        raise PushError(f"{folder}: no weights ({' or '.join(WEIGHTS)}): nothing to push.")
    return check_card(folder)


def describe(folder: str, repo_id: str, card: ModelCard, include_all: bool = False) -> str:
    files, kept = upload_selection(folder, include_all)
    lines = [f"Would upload {len(files)} files from {folder} to https://huggingface.co/{repo_id}:"]
    lines += [f"  {size:>12,}  {name}" for name, size in files]
    lines.append(f"  {sum(size for _, size in files):>12,}  bytes in all")
    if kept:
        lines.append(
            f"Kept here: {len(kept)} files, {sum(size for _, size in kept):,} bytes "
            f"({', '.join(sorted({name.split('/')[0] for name, _ in kept}))}): checkpoints "
            "and _-prefixed files always; answer dumps, locks and subfolders unless --include_all."
        )
    scores = ", ".join(f"{r.metric_name} {r.metric_value}" for r in card.data.eval_results or [])
    scores = scores or "no dev scores"
    lines.append(
        f"Card: license {card.data.license}, datasets {card.data.datasets}, "
        f"base model {card.data.base_model}, {scores}: metadata valid."
    )
    return "\n".join(lines)


def push(folder: str, repo_id: str, args) -> str:
    then = "No commit was made; fix that and run the same command again."
    commit = push_folder(
        folder,
        repo_id,
        args.commit_message,
        then=then,
        private=args.private,
        include_all=args.include_all,
    )
    return str(getattr(commit, "commit_url", commit))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a finished run folder (output_dir), e.g. runs/squad20pct")
    parser.add_argument("--repo_id", help="you/name on the Hub (default: the folder's name)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry_run", action="store_true", help="check and list, upload nothing")
    parser.add_argument("--commit_message", default="Upload a SQuAD question-answering model")
    parser.add_argument(
        "--include_all",
        action="store_true",
        help="also upload per-question answer dumps, locks and subfolders (e.g. eval/)",
    )
    args = parser.parse_args(argv)
    repo_id = args.repo_id or os.path.basename(os.path.normpath(args.folder))
    try:
        check_repo_id(repo_id)
        card = check_folder(args.folder)
    except PushError as err:
        raise SystemExit(f"error: {err}") from None
    print(describe(args.folder, repo_id, card, args.include_all))
    if args.dry_run:
        print("Dry run: nothing uploaded.")
        return
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise SystemExit(
            "error: HF_HUB_OFFLINE is set, so nothing can be uploaded. Set HF_HUB_OFFLINE=0 "
            "(and log in with `hf auth login`), or pass --dry_run."
        )
    print("Uploaded:", push(args.folder, repo_id, args))


if __name__ == "__main__":
    main(sys.argv[1:])
