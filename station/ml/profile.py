"""Size and speed of any network: parameters, multiply-adds, batch-1 latency.

Generic (classifier or detector): only ``model(x)`` is called, whatever it returns.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# On the CPU, F.scaled_dot_product_attention runs ``_scaled_dot_product_flash_attention_for_cpu``,
# which torch's counter has no formula for: without this, every attention matmul (QK^T and AV,
# three quarters of cti-paper's work at 224) counts as zero.
MISSING_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


def flop_counter() -> FlopCounterMode:
    """torch's FLOP counter (2 per multiply-add), with the attention kernels it misses on the CPU."""
    return FlopCounterMode(display=False, custom_mapping=MISSING_FLOP_FORMULAS)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_gmacs(model: nn.Module, input_size: Sequence[int]) -> float:
    """Multiply-adds (GMACs, ×1e-9; half the GFLOPs) of one forward pass at batch 1, ``input_size`` = (C, H, W),
    eval mode.

    ``FlopCounterMode`` counts 2 FLOPs per multiply-add (matmuls, convolutions, attention);
    elementwise operations (softmax, norms, activations) are not counted.
    """
    with _eval_mode(model), torch.no_grad(), flop_counter() as counter:
        model(_dummy_input(model, input_size))
    return counter.get_total_flops() / 2 / 1e9


def measure_latency_ms(model: nn.Module, input_size: Sequence[int], warmup: int = 3, runs: int = 10) -> float:
    """Median wall time in milliseconds of ``model(x)`` at batch 1, eval mode, ``torch.inference_mode``.

    Uses the current ``torch.get_num_threads()``; set it before calling to measure on fewer cores.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    x = _dummy_input(model, input_size)
    synchronize = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times: list[float] = []
    with _eval_mode(model), torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(runs):
            synchronize()
            start = time.perf_counter()
            model(x)
            synchronize()
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _dummy_input(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    if len(input_size) != 3 or any(int(side) < 1 for side in input_size):
        raise ValueError(f"input_size must be (C, H, W) with positive sides, got {tuple(input_size)}")
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, *(int(side) for side in input_size), generator=generator).to(device=device, dtype=dtype)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
