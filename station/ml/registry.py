"""Names of every buildable network: ``"<architecture>/<config>"`` or a bare config name.

Each architecture module keeps its config rows as data (``CONFIGS``) and a ``build(config,
**kwargs)`` builder; this table only says where they are, so that nothing heavier than
the chosen module is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch.nn as nn

# architecture -> module with CONFIGS and build(config_name, **kwargs)
ARCHITECTURES: dict[str, str] = {
    "cti": "station.ml.cti",
    "wbam-ffem": "station.ml.wbam_ffem",
    "torchvision": "station.ml.peers",
}


def _module(architecture: str):
    try:
        return importlib.import_module(ARCHITECTURES[architecture])
    except KeyError:
        raise KeyError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}") from None


def list_configs() -> dict[str, str]:
    """config name -> architecture, for every registered config."""
    names: dict[str, str] = {}
    for architecture in ARCHITECTURES:
        try:
            module = _module(architecture)
        except ImportError:
            continue
        for config in module.CONFIGS:
            names[config] = architecture
    return names


def architecture_of(config: str) -> str:
    configs = list_configs()
    if config not in configs:
        raise KeyError(f"unknown model config {config!r}; known: {', '.join(sorted(configs))}")
    return configs[config]


def build_model(config: str, **kwargs: Any) -> nn.Module:
    """Build the network named by ``config`` (e.g. ``cti-tiny``, ``wbam-ffem-nano``)."""
    return _module(architecture_of(config)).build(config, **kwargs)
