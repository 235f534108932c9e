"""The attention kernel a run trains and evaluates with, and `--attn_implementation auto`.

At this model's head size (32), PyTorch's fused CPU attention (sdpa) computes a score matrix a
few dozen columns at a time and spends most of its time outside matrix products; its backward
pass was the largest single cost of a bf16 training step on CPUs (docs/speed.md). "compiled" is
plain attention, written out (bf16 products, the softmax in fp32 with the scale and the padding
mask folded in), its forward and backward passes each compiled once by torch.compile, with the
sequence length left dynamic so that the batches' many padded lengths share one compiled kernel
instead of recompiling for each.

The backward pass recomputes the attention weights instead of keeping them, as flash attention
does, so the kernel holds no more memory than sdpa's. It is registered with transformers'
AttentionInterface: the model is the stock BertModel, and a saved folder loads anywhere with any
kernel.
"""

import functools
import logging
import shutil

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface

from qa.machine.hardware import has_accelerator

logger = logging.getLogger("run_qa.attention")  # a child of run_qa's logger: lands in train.log

COMPILED = "compiled"
CHOICES = ("auto", "sdpa", "eager", COMPILED)


def attention_forward(query, key, value, padding_bias, scaling: float):
    """(softmax(Q K^T * scaling + padding_bias) V, log-sum-exp of each score row); the products
    in the inputs' precision, the softmax in fp32 (bf16 scores would round away the small
    differences softmax turns into weights)."""
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scaling
    if padding_bias is not None:
        scores = scores + padding_bias
    row_lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    weights = torch.exp(scores - row_lse).to(value.dtype)
    return torch.matmul(weights, value), row_lse


def attention_inference(query, key, value, padding_bias, scaling: float):
    """attention_forward's output alone: softmax keeps no log-sum-exp for a backward pass."""
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scaling
    if padding_bias is not None:
        scores = scores + padding_bias
    return torch.matmul(torch.softmax(scores, dim=-1).to(value.dtype), value)


def attention_backward(query, key, value, padding_bias, row_lse, output, grad_output, scaling):
    """Gradients of Q, K and V. The weights are recomputed from Q, K and the saved log-sum-exp
    rather than kept from the forward pass: one more Q K^T product instead of a batch x heads x
    length x length fp32 matrix per layer (675 MiB for six layers at 16 x 384 tokens)."""
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scaling
    if padding_bias is not None:
        scores = scores + padding_bias
    weights = torch.exp(scores - row_lse)
    grad_value = torch.matmul(weights.to(value.dtype).transpose(-1, -2), grad_output)
    grad_weights = torch.matmul(grad_output, value.transpose(-1, -2)).float()
    # softmax's backward: the row sum of grad_weights * weights equals that of grad_output * output
    row_dot = (grad_output.float() * output.float()).sum(dim=-1, keepdim=True)
    grad_scores = (weights * (grad_weights - row_dot) * scaling).to(query.dtype)
    grad_query = torch.matmul(grad_scores, key)
    grad_key = torch.matmul(grad_scores.transpose(-1, -2), query)
    return grad_query, grad_key, grad_value


@functools.cache
def compiled(function):
    # dynamic=True: batch size and length are symbols in the compiled code, so the first call
    # compiles once (tens of seconds; torch keeps the result on disk for later runs) and every
    # later shape reuses it instead of recompiling.
    return torch.compile(function, dynamic=True)


# The most fp32 score-matrix bytes one kernel call makes at a time. The kernels build batch x
# heads x length x length matrices in passing (sdpa's tiles never do); a batch is cut into pieces
# of whole windows so that these stay small: at 16 x 384 tokens one call would make 113 MB per
# matrix, and the allocator keeps what a long batch once took.
SCORE_BYTES_PER_CALL = 32 * 2**20


def batch_pieces(query) -> list[slice]:
    """Slices of the batch, each of whole windows whose score matrices fit the budget."""
    batch, heads, length = query.shape[:3]
    windows = max(1, SCORE_BYTES_PER_CALL // (heads * length * length * 4))
    return [slice(start, start + windows) for start in range(0, batch, windows)]


def by_pieces(function, pieces, *tensors, scaling):
    """function applied to each piece of the batch (None stays None), its outputs joined."""
    outputs = [
        function(*(None if t is None else t[piece] for t in tensors), scaling) for piece in pieces
    ]
    if isinstance(outputs[0], torch.Tensor):
        return torch.cat(outputs)
    return tuple(torch.cat(parts) for parts in zip(*outputs))


class CompiledAttention(torch.autograd.Function):
    """Plain attention whose forward and backward passes are each one compiled kernel."""

    @staticmethod
    def forward(ctx, query, key, value, padding_bias, scaling):
        output, row_lse = by_pieces(
            compiled(attention_forward),
            batch_pieces(query),
            query,
            key,
            value,
            padding_bias,
            scaling=scaling,
        )
        ctx.save_for_backward(query, key, value, padding_bias, row_lse, output)
        ctx.scaling = scaling
        return output

    @staticmethod
    def backward(ctx, grad_output):
        query = ctx.saved_tensors[0]
        grads = by_pieces(
            compiled(attention_backward),
            batch_pieces(query),
            *ctx.saved_tensors,
            grad_output.contiguous(),
            scaling=ctx.scaling,
        )
        return *grads, None, None


def compiled_attention_forward(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs
):
    """transformers' attention-function signature: (batch, heads, length, head size) in, the
    output as (batch, length, heads, head size) and no weights out."""
    if dropout:  # refused at start (kernel_for); a guard so that dropout is never skipped
        raise ValueError("the compiled attention kernel has no dropout: use sdpa or eager")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if torch.is_grad_enabled() and (query.requires_grad or key.requires_grad):
        output = CompiledAttention.apply(query, key, value, attention_mask, scaling)
    else:  # evaluation: no backward pass to prepare for
        output = by_pieces(
            compiled(attention_inference),
            batch_pieces(query),
            query,
            key,
            value,
            attention_mask,
            scaling=scaling,
        )
    return output.transpose(1, 2).contiguous(), None


def padding_bias(batch_size, q_length, kv_length, attention_mask=None, **kwargs):
    """The mask transformers hands the kernel: an additive fp32 bias of (batch, 1, 1, keys),
    0 for real tokens and the float minimum for padding (broadcast over heads and queries, not
    expanded to a length x length matrix); None where nothing is padded."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    keep = attention_mask[:, None, None, :kv_length].bool()
    zero = torch.zeros((), dtype=torch.float32, device=keep.device)
    return torch.where(keep, zero, torch.finfo(torch.float32).min)


AttentionInterface.register(COMPILED, compiled_attention_forward)
AttentionMaskInterface.register(COMPILED, padding_bias)


def has_compiler() -> bool:
    """torch.compile's CPU backend writes C++ and builds it with the system's compiler."""
    return shutil.which("g++") is not None or shutil.which("c++") is not None


def kernel_for(choice: str, bf16: bool, on_cpu: bool, attention_dropout: float):
    """(kernel, why) for `--attn_implementation choice` on this process's hardware.

    auto: "compiled" on a CPU that trains in bf16 (AVX512-BF16 or AMX) with no attention
    dropout and a C++ compiler at hand; sdpa elsewhere (GPUs have fused kernels that suit them;
    fp32-only CPUs were not measured with it). An explicit choice is kept, except "compiled"
    with attention dropout, which it cannot apply."""
    if choice not in CHOICES:
        raise SystemExit(
            f"error: attn_implementation {choice!r} is not one of {', '.join(CHOICES)}."
        )
    dropout = attention_dropout > 0
    if choice == COMPILED and dropout:
        raise SystemExit(
            "error: attn_implementation compiled has no attention dropout: set "
            '"attention_dropout": 0.0, or use attn_implementation sdpa or eager.'
        )
    if choice != "auto":
        return choice, "as set"
    if not on_cpu:
        return "sdpa", "auto: a GPU's fused attention"
    if not bf16:
        return "sdpa", "auto: fp32 on this CPU (the compiled kernel is for bf16 CPUs)"
    if dropout:
        return "sdpa", "auto: attention dropout is on, which the compiled kernel cannot apply"
    if not has_compiler():
        return "sdpa", "auto: no C++ compiler (g++) for torch.compile"
    return COMPILED, "auto: a bf16 CPU, no attention dropout"


def attention_dropout_of(config) -> float:
    """The model's attention dropout, under the names BERT-like and DistilBERT configs use."""
    for name in ("attention_probs_dropout_prob", "attention_dropout"):
        if hasattr(config, name):
            return float(getattr(config, name) or 0.0)
    return 0.0


def set_attention_kernel(model, choice: str, training_args) -> str:
    """Resolve `choice` for this model and process, switch the model to it and log it."""
    on_cpu = training_args.use_cpu or not has_accelerator()
    kernel, why = kernel_for(
        choice, bool(training_args.bf16), on_cpu, attention_dropout_of(model.config)
    )
    if kernel != model.config._attn_implementation:
        model.set_attn_implementation(kernel)
    logger.info("Attention kernel: %s (%s)", kernel, why)
    return kernel
