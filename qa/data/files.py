"""The official SQuAD files (names, sizes, sha256, URLs) and the folder the recipe reads them from.

The SQuAD site publishes no checksums; the sha256 values below are those of the files it serves,
so a download is checked against them. The folder, unless SQUAD_DIR names one: a local mirror
beside the checkout (../shared/squad) when there is one, else a per-user cache that `make data`
(python -m qa.data.download) fills.
"""

import os
from pathlib import Path
from typing import NamedTuple

from qa import ROOT


class OfficialFile(NamedTuple):
    name: str
    size: int  # bytes
    sha256: str
    questions: str  # what it holds, for the messages and the docs


OFFICIAL_FILES = {
    f.name: f
    for f in (
        OfficialFile(
            "train-v1.1.json",
            30_288_272,
            "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
            "SQuAD 1.1 train, 87,599 questions",
        ),
        OfficialFile(
            "dev-v1.1.json",
            4_854_279,
            "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
            "SQuAD 1.1 dev, 10,570 questions",
        ),
        OfficialFile(
            "dev-v2.0.json",
            4_370_528,
            "80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8",
            "SQuAD 2.0 dev, 11,873 questions",
        ),
        OfficialFile(
            "train-v2.0.json",
            42_123_633,
            "68dcfbb971bd3e96d5b46c7177b16c1a4e7d4bdef19fb204502738552dede002",
            "SQuAD 2.0 train, 130,319 questions",
        ),
    )
}
# What the configs read: make data fetches these (train-v2.0.json only when asked for).
RECIPE_FILES = ("train-v1.1.json", "dev-v1.1.json", "dev-v2.0.json")
OFFICIAL_BASE_URL = "https://rajpurkar.github.io/SQuAD-explorer/dataset"
# A local mirror's own checksums (its files may be rebuilt copies): they win over the official.
MIRROR_SUMS = "SHA256SUMS"

SHARED_SQUAD_DIR = ROOT.parent / "shared" / "squad"


def base_url() -> str:
    """Where the files are downloaded from; SQUAD_BASE_URL points elsewhere (a mirror, a test)."""
    return (os.environ.get("SQUAD_BASE_URL") or OFFICIAL_BASE_URL).rstrip("/")


def url_of(name: str) -> str:
    return f"{base_url()}/{name}"


def cache_dir() -> Path:
    """The per-user cache: outside the checkout, so `make clean` keeps it, every checkout shares
    one copy and nothing downloaded can be committed by mistake."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "bert-squad-recipe" / "squad"


def default_squad_dir() -> Path:
    """The folder used when SQUAD_DIR is unset: the mirror beside the checkout if present."""
    return SHARED_SQUAD_DIR if SHARED_SQUAD_DIR.is_dir() else cache_dir()


def squad_dir() -> Path:
    return Path(os.path.expanduser(os.environ.get("SQUAD_DIR") or default_squad_dir()))
