"""The training step the CPU benches time and measure: a random batch, autocast, AdamW.

Benches that import this run as modules from the checkout (`python -m bench.NAME`).
"""

import torch


def random_batch(windows: int, length: int, padded: int, padding: int) -> dict:
    """`windows` random windows of `length` tokens, the first `padded` of them ending in
    `padding` padding tokens, as in a batch of the recipe's; answer spans of 4 tokens."""
    ids = torch.randint(1000, 30000, (windows, length))
    mask = torch.ones_like(ids)
    mask[:padded, length - padding :] = 0
    starts = torch.randint(1, length - padding - 5, (windows,))
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "start_positions": starts,
        "end_positions": starts + 3,
    }


def optimizer_step(model, optimizer, batch: dict, bf16: bool, schedule=None) -> None:
    """Forward under bf16 autocast where the CPU has it, backward, and the optimizer's step; with
    a learning-rate `schedule`, also what the Trainer adds to a step: clipping the gradients' norm
    at 1.0 before the update, the schedule's step after it."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    if schedule is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if schedule is not None:
        schedule.step()
    optimizer.zero_grad()
