"""What a newcomer relies on: library code imported without path edits, a README whose first
screen says how to start, and a `make help` that lists every target."""

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tracked_python_files():
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True)
    return [ROOT / name for name in listed.stdout.split()] or list(ROOT.glob("**/*.py"))


def test_no_module_outside_tests_edits_sys_path():
    offenders = []
    for path in tracked_python_files():
        if "tests" in path.relative_to(ROOT).parts or ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target = (
                node.func.value
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                else getattr(node, "targets", [None])[0]
            )
            if isinstance(target, ast.Subscript):
                target = target.value
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "path"
                and getattr(target.value, "id", None) == "sys"
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_the_readme_first_screen_says_how_to_start():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    first = "\n".join(lines[:40])
    for needed in (
        "make train",
        "make test",
        "SQUAD_DIR",
        "runs/squad20pct/",
        "6-layer BERT",
        "bert-base-uncased",
        "AVX2",
        "dev F1",
    ):
        assert needed in first, needed


def make_help() -> str:
    """What `make help` prints."""
    command = ["make", "--no-print-directory", "help"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_help_lists_every_target():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())
    helped = make_help()
    listed = set(re.findall(r"^\s+make (\S+)", helped, re.M))
    assert phony == listed, (phony - listed, listed - phony)


def test_every_tool_and_bench_has_a_make_target():
    """A newcomer finds each tool through `make help`: every script in tools/ and the benches
    that `make` offers run from a recipe line of some target."""
    recipes = "\n".join(
        line
        for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
        if line.startswith("\t")
    )
    scripts = (
        sorted(ROOT.glob("tools/*.py"))
        + [ROOT / "bench" / n for n in ("bench.py", "inference.py")]
        + [ROOT / "search_qa.py"]
    )

    def runs(path: Path) -> bool:  # as a script, or as a module from the checkout (-m bench.bench)
        relative = path.relative_to(ROOT)
        module = ".".join(relative.with_suffix("").parts)
        return str(relative) in recipes or f"-m {module}" in recipes

    missing = [str(p.relative_to(ROOT)) for p in scripts if not runs(p)]
    assert scripts and not missing, missing


def test_make_help_names_every_variable_the_makefile_reads():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    read = set(re.findall(r"\$\(([A-Z][A-Z_0-9]*)\)|\$\$([A-Z][A-Z_0-9]*)", makefile))
    read = {name for pair in read for name in pair if name}
    read |= set(re.findall(r"^(?:export )?([A-Z][A-Z_0-9]*) \?=", makefile, re.M))
    internal = {
        "BIN",
        "MAKEFILE_LIST",
        "SHELL",
        "PYTEST",
    }  # make's own, or derived (VENV, TEST_WORKERS)
    helped = make_help()
    variables = helped.split("Variables", 1)[1]
    missing = {name for name in read - internal if not re.search(rf"\b{name}\b", variables)}
    assert not missing, missing


@pytest.mark.slow  # starts a fresh interpreter (docs/design.md: The test suite)
def test_the_installed_package_scores_with_its_own_metric_outside_the_checkout(tmp_path):
    """The metric ships inside qa/ and is found from the package, not from the checkout's path:
    a wheel of qa installed into an empty folder scores a known answer from there."""
    source = tmp_path / "source"  # built from a copy: a build leaves build/ where it runs
    shutil.copytree(ROOT / "qa", source / "qa", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", source)
    build = ["pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path]
    subprocess.run([sys.executable, "-m", *map(str, build)], cwd=source, check=True)
    (wheel,) = tmp_path.glob("*.whl")
    site = tmp_path / "site"
    install = ["pip", "install", "--no-deps", "-q", "--target", site, wheel]
    subprocess.run([sys.executable, "-m", *map(str, install)], check=True)
    score = (
        f"import qa, qa.scoring.metric; assert qa.__file__.startswith({str(site)!r}), qa.__file__\n"
        "m = qa.scoring.metric.load_metric()\n"
        "print(m.compute(predictions=[{'id': 'a', 'prediction_text': 'Denver Broncos'}],"
        " references=[{'id': 'a', 'answers': {'text': ['the Denver Broncos'], 'answer_start': [0]}}]))"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", score], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'exact_match': 100.0" in done.stdout and "'f1': 100.0" in done.stdout


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_in_the_docs_and_results_points_at_a_file():
    """Moving a folder (results/ was split into runs, benches, tools, ci) must not leave a link
    in the README, docs/ or a results README pointing at nothing."""
    pages = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("results/**/README.md")]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            path = target.split("#")[0]
            if not path or "://" in path or path.startswith("mailto:"):
                continue
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_results_index_lists_every_results_folder():
    index = (ROOT / "results" / "README.md").read_text(encoding="utf-8")
    folders = [p for p in ROOT.glob("results/*/*") if p.is_dir() or p.suffix == ".md"]
    folders += [p for p in ROOT.glob("results/*") if p.is_dir()]
    missing = [
        str(p.relative_to(ROOT / "results"))
        for p in folders
        if f"`{p.relative_to(ROOT / 'results')}" not in index
    ]
    assert folders and not missing, missing


def test_no_committed_result_is_a_byte_identical_copy_of_another():
    """A run and its re-evaluation once committed the same predictions twice. Small per-run files
    (qa_settings.json, split manifests, a digest) may repeat: under 2 KB each, they say which
    settings each folder ran with."""
    by_digest = {}
    for path in (p for p in ROOT.glob("results/**/*") if p.is_file()):
        if path.stat().st_size >= 2048:
            by_digest.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), []).append(path)
    copies = [[str(p.relative_to(ROOT)) for p in ps] for ps in by_digest.values() if len(ps) > 1]
    assert not copies, copies


def test_run_outputs_are_ignored_but_committed_results_are_not():
    """runs/ holds the weights and checkpoints; results/runs/ what is committed of them."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored("runs/squad20pct/model.safetensors")
    assert not ignored("results/runs/a-new-run/all_results.json")


# qa/'s stage packages in pipeline order (qa/__init__.py): each imports only those before it.
STAGES = ("machine", "data", "answers", "scoring", "serve", "run")


def qa_imports(path: Path) -> set[str]:
    """The qa modules a file imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qa."):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("qa.")}
    return names


def test_no_stage_imports_a_stage_after_it():
    packages = sorted(p.name for p in (ROOT / "qa").iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(STAGES)
    upward = []
    for stage in STAGES:
        for path in (ROOT / "qa" / stage).glob("*.py"):
            for module in qa_imports(path):
                imported = module.split(".")[1]
                if imported in STAGES and STAGES.index(imported) > STAGES.index(stage):
                    upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not upward, upward


def test_the_library_holds_no_test_or_bench_code_and_only_foundations_at_its_top():
    top = sorted(p.name for p in (ROOT / "qa").glob("*.py"))
    assert top == ["__init__.py", "atomic.py", "ranges.py", "user_files.py"]
    for stage in STAGES:  # the tests' oracle and the bench's baseline live beside them
        assert not {"reference.py", "classic_postprocess.py"} & {
            p.name for p in (ROOT / "qa" / stage).glob("*.py")
        }


def test_functions_stay_short_enough_to_read():
    """The recipe's scripts read as a pipeline of short stages; the library's functions fit a
    screen or two."""
    limits = {ROOT / name: 60 for name in ("run_qa.py", "trainer_qa.py", "search_qa.py")}
    limits |= {path: 100 for path in (ROOT / "qa").rglob("*.py")}
    long = []
    for path, limit in limits.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {lines}")
    assert not long, long
