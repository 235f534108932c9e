"""What a trained folder puts on the Hub, and one line instead of a traceback when the Hub fails.

`make push` (tools/push_qa.py) and run_qa.py's `push_to_hub` upload the same selection: what
loading and judging the model needs (weights, tokenizer, config, card, answer settings, small
results, curves). Per-question answer dumps, locks and nested folders (an `eval/` of `make eval`)
stay on this machine unless asked for (`include_all`); checkpoints and `_`-prefixed files always do,
as with Trainer.push_to_hub.
"""

import glob
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    HTTPError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
)
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from qa.serve.export import EXPORT_FOLDER

TRAINER_IGNORE = ["_*", f"{PREFIX_CHECKPOINT_DIR}-*"]  # as Trainer.push_to_hub
LOCAL_ONLY = [  # anywhere in the folder, unless include_all
    "*.lock",  # a run's lock: `make eval` leaves eval.lock beside its eval/ folder
    "*predictions.json",  # one answer (or n-best list) per question: 28 MB for the dev set
    "*null_odds.json",  # SQuAD 2.0: one score per question
]
# TensorBoard's curves (the Hub shows them in its Metrics tab), and the ONNX export (make export)
# in the layout ONNX Runtime users look for on the Hub.
HUB_SUBFOLDERS = ("runs", EXPORT_FOLDER)


def ignore_patterns(folder: str, include_all: bool = False) -> list[str]:
    """The patterns upload_folder leaves out of `folder` (its own DEFAULT_IGNORE_PATTERNS aside)."""
    if include_all:
        return list(TRAINER_IGNORE)
    nested = sorted(
        p.name for p in Path(folder).iterdir() if p.is_dir() and p.name not in HUB_SUBFOLDERS
    )
    # fnmatch, as huggingface_hub matches: `*` crosses `/`, so "eval/*" is the whole subtree.
    return TRAINER_IGNORE + LOCAL_ONLY + [f"{glob.escape(name)}/*" for name in nested]


def upload_selection(folder: str, include_all: bool = False):
    """([(path in the repo, bytes)] uploaded, in upload order; the same for what stays local)."""
    root = Path(folder)
    paths = {p.relative_to(root).as_posix(): p for p in sorted(root.glob("**/*")) if p.is_file()}
    patterns = ignore_patterns(folder, include_all) + DEFAULT_IGNORE_PATTERNS
    chosen = set(filter_repo_objects(paths, ignore_patterns=patterns))
    sized = [(name, path.stat().st_size) for name, path in paths.items()]
    return [f for f in sized if f[0] in chosen], [f for f in sized if f[0] not in chosen]


def push_folder(
    folder,
    repo_id,
    commit_message,
    *,
    then,
    token=None,
    private=None,
    revision=None,
    include_all=False,
    blocking=True,
    create=True,
):
    """Create `repo_id` if needed (`create`) and upload the selection of `folder`; `then` ends
    the line said when the Hub cannot be reached or refuses (what the user can do next)."""
    with hub_errors(repo_id, then, token):
        api = HfApi()
        if create:
            repo_id = api.create_repo(repo_id, token=token, private=private, exist_ok=True).repo_id
        return api.upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            ignore_patterns=ignore_patterns(folder, include_all),
            commit_message=commit_message,
            token=token,
            revision=revision,
            run_as_future=not blocking,
        )


@contextmanager
def hub_errors(repo_id: str, then: str, token: str | None = None):
    """SystemExit with one line naming the repository, the cause and `then`, for the ways a
    push fails that are no bug of ours: offline, unreachable, a token refused, a bad id."""
    try:
        yield
    except OfflineModeIsEnabled:
        raise SystemExit(
            f"error: HF_HUB_OFFLINE is set, so nothing can be uploaded to {repo_id}. "
            f"Set HF_HUB_OFFLINE=0 (and log in with `hf auth login`). {then}"
        ) from None
    except (HFValidationError, LocalTokenNotFoundError, HTTPError) as err:
        raise SystemExit(f"error: {why_the_hub_failed(err, repo_id, token)} {then}") from None


def why_the_hub_failed(err: Exception, repo_id: str, token: str | None) -> str:
    """One sentence; never the token, whatever the server echoed back."""
    if isinstance(err, HFValidationError):
        return f"{repo_id!r} is not a Hub repository id ({err}); give --repo_id you/name."
    if isinstance(err, LocalTokenNotFoundError):
        return f"no Hub token to push {repo_id}: log in with `hf auth login` or set HF_TOKEN."
    response = getattr(err, "response", None)
    if not isinstance(err, HfHubHTTPError) or response is None:  # no answer at all
        return (
            f"cannot reach the Hub at {constants.ENDPOINT} to push {repo_id} "
            f"({type(err).__name__}: {redact(str(err), token)}); check the network and HF_ENDPOINT."
        )
    status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    if response.status_code in (401, 403):
        return (
            f"the Hub refused the token for {repo_id} ({status}): log in with `hf auth login` "
            f"(or set HF_TOKEN) with a token that may write to {repo_id.split('/')[0]}."
        )
    if response.status_code == 404:
        return f"the Hub has no {repo_id} for this token ({status}): check the name and namespace."
    said = redact(err.server_message or "", token)[:300]  # one line, however long the answer
    return f"the Hub refused the upload to {repo_id} ({status}{': ' + said if said else ''})."


def redact(text: str, token: str | None) -> str:
    """`text` without the token given or the one huggingface_hub would send."""
    for secret in {token, get_token()} - {None, ""}:
        text = text.replace(secret, "***")
    return " ".join(text.split())
