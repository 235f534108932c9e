"""Model FLOPs of a BERT encoder on real (non-padding) tokens, and the machine's matmul peak.

Model FLOPs utilisation (MFU) = model FLOPs / seconds / peak FLOP/s of the precision in use. It
tells how close a run comes to what the machine can do, whatever the machine: seconds alone do
not carry from an AVX2 laptop to an AMX server or a GPU.

Forward FLOPs of one window of n real tokens, hidden size h, feed-forward size f, L layers
(a multiply-add counts 2):

    L * (8 n h^2      query, key, value and output projections: 4 matrices of h x h
         + 4 n h f    the two feed-forward matrices, h x f and f x h
         + 4 n^2 h)   attention scores (Q K^T) and their weighted sum of values
    + 4 n h           the span head (h x 2)

Embedding look-ups, layer norms, softmax and activations are left out, as is customary: they are
a few percent of the total. Training counts 3x the forward pass (the backward pass costs about
twice the forward). Padding tokens are not counted: work spent on them is waste, not progress.
"""

import logging
import time

import numpy as np
import torch

logger = logging.getLogger("run_qa.flops")  # a child of run_qa's logger: lands in train.log


def forward_flops(config, tokens) -> float:
    """Forward FLOPs over windows of `tokens` real tokens each (a sequence of counts)."""
    n = np.asarray(tokens, dtype=np.float64)
    h, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = 8 * n * h * h + 4 * n * h * f + 4 * n * n * h
    return float((layers * per_layer + 4 * n * h).sum())


def training_flops(config, tokens, epochs: float = 1.0) -> float:
    return 3.0 * forward_flops(config, tokens) * epochs


def matmul_peak(dtype: torch.dtype, size: int = 4096, repeats: int = 5, device="cpu") -> float:
    """The best FLOP/s of a size x size matrix product in `dtype`, at torch's thread count.

    The best of a few runs after a warm-up: the machine's practical limit for dense work."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    # A GPU does one product in well under a millisecond: time many between synchronisations so
    # that launch and synchronisation costs stay out of the rate.
    inner = 1 if device == "cpu" else 50
    torch.mm(a, b)  # warm-up: kernels chosen, memory touched
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        began = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - began) / inner)
    return 2.0 * size**3 / best


# The best rate each (precision, device) reached in this process, over every trial so far.
_best_peaks: dict[tuple[torch.dtype, str], float] = {}


def machine_peak(dtype: torch.dtype, device: str, new_trial: bool = True) -> float:
    """This process's matmul peak: a new trial (2048: big enough to near the peak on CPUs and
    GPUs, cheap enough for every run), and the best of it and every earlier trial. A run tries
    before training and at each report, so a slow moment (another job, a throttled core) lowers
    one trial, not the peak, and cannot inflate MFU."""
    if not new_trial and (dtype, device) in _best_peaks:
        return _best_peaks[(dtype, device)]
    trial = matmul_peak(dtype, size=2048, repeats=5, device=device)
    best = max(trial, _best_peaks.get((dtype, device), 0.0))
    _best_peaks[(dtype, device)] = best
    return best


def forget_peaks() -> None:
    _best_peaks.clear()


def precision_peak(training_args, new_trial: bool = True) -> tuple[torch.dtype, float]:
    """(dtype, FLOP/s): the peak of the precision a run uses, for all of its processes; with
    new_trial False, the best so far (a first trial only if there is none yet)."""
    dtype = torch.bfloat16 if training_args.bf16 else torch.float32
    device = "cuda" if torch.cuda.is_available() and not training_args.use_cpu else "cpu"
    # every process has its own cores or device
    return dtype, machine_peak(dtype, device, new_trial) * training_args.world_size


def utilisation(
    config, features, seconds, stage, training_args, against_peak=True, epochs=None
) -> dict:
    """Model FLOPs of `stage` on real tokens and their rate; with `against_peak`, also MFU
    against this machine's matrix-product peak in the precision used (see above).

    Only the main process measures and reports ({} elsewhere): the processes of one machine share
    its cores, and a peak timed by each at once would be timed against the others."""
    if training_args.process_index != 0:
        return {}
    tokens = features["length"]
    if stage.startswith("train"):  # train, or train_steps (the optimizer steps alone)
        # `epochs`: those trained in `seconds` (max_steps, a resume), else num_train_epochs.
        flops = training_flops(
            config, tokens, training_args.num_train_epochs if epochs is None else epochs
        )
    else:
        flops = forward_flops(config, tokens)
    rate = flops / max(seconds, 1e-9)
    result = {f"{stage}_model_flops": flops, f"{stage}_model_tflops_per_second": rate / 1e12}
    message = f"{stage}: {flops:.3g} model FLOPs in {seconds:.0f} s = {rate / 1e12:.3f} TFLOP/s"
    if against_peak:
        # The caller times a new trial before a stage's figures: the figures of one stage (train
        # and train_steps) divide by the same peak.
        dtype, peak = precision_peak(training_args, new_trial=False)
        result[f"{stage}_peak_tflops_per_second"] = peak / 1e12
        result[f"{stage}_mfu"] = rate / peak
        message += (
            f"; MFU {100 * rate / peak:.1f}% of the {str(dtype).removeprefix('torch.')} matmul "
            f"peak measured here, best of its trials in this run ({peak / 1e12:.3f} TFLOP/s)"
        )
    logger.info(message)
    return result
