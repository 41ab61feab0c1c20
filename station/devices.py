"""Compute device choice: ``auto`` takes a CUDA GPU when one works, else the CPU."""

from __future__ import annotations

import torch


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
    return f"CPU ({torch.get_num_threads()} threads)"
