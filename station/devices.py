"""Compute device choice (``auto`` takes a CUDA GPU when one works, else the CPU) and the one
mixed-precision policy every forward pass follows (engine, batch review, evaluation, training)."""

from __future__ import annotations

import contextlib

import torch

from station.labels import plural

ROLES = ("classifier", "detector", "training")
AMP_CHOICES = ("auto", "off", "bf16")


def resolve_device(preference: str = "auto") -> torch.device:
    preference = (preference or "auto").lower()
    if preference not in ("auto", "cpu", "cuda") and not preference.startswith("cuda:"):
        raise ValueError(f"unknown device {preference!r}; use auto, cpu or cuda")
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda" if preference == "auto" else preference)
    if preference.startswith("cuda"):
        raise RuntimeError(f"device {preference!r} was asked for, but no CUDA GPU is available")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({plural(torch.get_num_threads(), 'thread')})"


def autocast(device: torch.device, role: str, amp: str = "auto") -> contextlib.AbstractContextManager:
    """Mixed precision for ``role``'s forward pass on ``device``.

    On CUDA (``amp`` "auto" or "bf16") the detector runs in fp16: its box coordinates need fp16's
    mantissa (bf16 steps by 4 px at 512-1024 px, fp16 by 0.5 px, which matters for 5-px
    defects); the classifier and training steps run in bf16 where the GPU has it (fp32's range),
    else fp16. On the CPU everything stays fp32 unless ``amp="bf16"`` asks for bf16 autocast.
    ``amp="off"``: fp32 everywhere.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {ROLES}")
    if amp not in AMP_CHOICES:
        raise ValueError(f"unknown amp setting {amp!r}; one of {AMP_CHOICES}")
    if amp == "off" or (device.type == "cpu" and amp != "bf16"):
        return contextlib.nullcontext()
    if device.type == "cuda":
        if role == "detector":
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast(device.type, dtype=torch.bfloat16)
