"""CTI: the CNN–transformer interaction classifier of "IC Packaging Material Identification via a
Hybrid Deep Learning Framework with CNN–Transformer Bidirectional Interaction" (Micromachines 2024,
15(3):418), Sections 2.1–2.2. Equation numbers in comments are the paper's; how the code reads
the paper where it is garbled or silent is in docs/MODELS.md.

Read top to bottom: blocks → config rows (``CONFIGS``, Table 3's ablations included) → network
(``CTI``) → builder (``build``). Stages take and return ``[B, C, H, W]``; inside a stage the map
travels as tokens ``[B, N = H·W, C]``. Any H, W ≥ 1 work (ceil-mode strides, clipped windows).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import Conv2dNormActivation

MIN_SPAN = 1e-2


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


def adaptive_span_mask(distances: torch.Tensor, span: torch.Tensor, slope: float = 0.5) -> torch.Tensor:
    """Eq. (4): ``Me(x) = clamp((x − H·x + H·e) / e, 0, 1)`` with ``H = slope``, ``e = span``.

    ``distances`` ``[N, N]`` (any shape), ``span`` broadcastable against it (``[h, 1, 1]`` for
    one span per head). ``Me(0) = H``; the mask rises with distance and is 1 from ``x = e`` on.
    """
    return ((distances - slope * distances + slope * span) / span).clamp(0.0, 1.0)


def span_log_mask(distances: torch.Tensor, span: torch.Tensor, slope: float, dtype: torch.dtype) -> torch.Tensor:
    """``log Me`` of ``distances`` for every head, ``[h, *distances.shape]``: eq. (5)'s additive mask.

    Computed in float32 and floored at the smallest float32, so it is finite everywhere and
    a row can never be all ``-inf``; then cast to the attention's dtype.
    """
    span = span.float().clamp_min(MIN_SPAN).view(-1, *([1] * distances.ndim))
    mask = adaptive_span_mask(distances, span, slope)
    return mask.clamp_min(torch.finfo(torch.float32).tiny).log().to(dtype)


@dataclass(frozen=True)
class PatchGeometry:
    """Distances between the N = H·W row-major positions of a feature map, as a table + index.

    A pair's distance depends only on its offset (|Δrow|, |Δcol|), so the mask is computed on
    the H·W offsets and gathered to ``[N, N]`` once per block: one pass over N² instead of
    several elementwise ones.
    """

    offsets: torch.Tensor  # [H·W] float32: Euclidean length of offset |Δrow|·W + |Δcol|
    index: torch.Tensor  # [N·N] int64 into offsets, row-major over (query, key)

    def gather(self, table: torch.Tensor) -> torch.Tensor:
        """``table`` ``[..., H·W]`` over offsets -> ``[..., N, N]`` over position pairs."""
        tokens = self.offsets.numel()
        return table.index_select(-1, self.index).unflatten(-1, (tokens, tokens))

    def distances(self) -> torch.Tensor:
        return self.gather(self.offsets)  # [N, N]


@functools.lru_cache(maxsize=8)
def patch_geometry(height: int, width: int, device: torch.device) -> PatchGeometry:
    """Cached per map size; built outside inference mode so that training can reuse it."""
    with torch.inference_mode(False), torch.no_grad():
        rows = torch.arange(height, device=device)
        cols = torch.arange(width, device=device)
        # numpy, not torch.hypot: a constant of the map size, so an exported graph holds the table
        # instead of an aten::hypot that ONNX has no operator for
        offsets = torch.from_numpy(np.hypot.outer(np.arange(height), np.arange(width)).astype(np.float32))
        offsets = offsets.flatten().to(device)
        row_of, col_of = rows.repeat_interleave(width), cols.repeat(height)
        index = (row_of[:, None] - row_of[None]).abs() * width + (col_of[:, None] - col_of[None]).abs()
        return PatchGeometry(offsets, index.flatten())


def window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, height: int, width: int, window: int
) -> torch.Tensor:
    """Self-attention inside non-overlapping ``window × window`` windows (eq. 9's X_local).

    ``q, k, v``: ``[B, h, H·W, d]``. Windows are clipped to the map; a side that is not a
    multiple of the window is zero-padded and the padded keys are masked out (every window
    holds at least one real position, so no row is fully masked).
    """
    _, heads, _, dim = q.shape  # the batch stays -1 in every view: an exported graph keeps it dynamic
    win_h, win_w = min(window, height), min(window, width)
    pad_h, pad_w = -height % win_h, -width % win_w
    rows, cols = (height + pad_h) // win_h, (width + pad_w) // win_w

    def to_windows(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t.view(-1, heads, height, width, dim), (0, 0, 0, pad_w, 0, pad_h))
        t = t.view(-1, heads, rows, win_h, cols, win_w, dim).permute(0, 1, 2, 4, 3, 5, 6)
        return t.reshape(-1, heads * rows * cols, win_h * win_w, dim)  # [B, h·nW, S, d]

    key_mask = None
    if pad_h or pad_w:
        valid = F.pad(torch.ones(height, width, dtype=torch.bool, device=q.device), (0, pad_w, 0, pad_h))
        valid = valid.view(rows, win_h, cols, win_w).permute(0, 2, 1, 3).reshape(1, 1, rows * cols, 1, win_h * win_w)
        key_mask = valid.expand(1, heads, -1, -1, -1).reshape(1, heads * rows * cols, 1, win_h * win_w)
    out = F.scaled_dot_product_attention(to_windows(q), to_windows(k), to_windows(v), attn_mask=key_mask)
    out = out.view(-1, heads, rows, cols, win_h, win_w, dim).permute(0, 1, 2, 4, 3, 5, 6)
    out = out.reshape(-1, heads, height + pad_h, width + pad_w, dim)[:, :, :height, :width]
    return out.reshape(-1, heads, height * width, dim)


class MixPool(nn.Module):
    """Mixed pooling (Lee, Gallagher & Tu 2016): ``a·max + (1 − a)·mean``, ``a = σ(logit)``.

    ``kernel_size=None``: over the whole dimension ``dim`` (kept, size 1). Otherwise a
    ``kernel_size`` stride-1 spatial pooling of an ``[B, C, H, W]`` map, same size out.
    """

    def __init__(self, dim: int = 1, kernel_size: int | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.kernel_size = kernel_size
        self.logit = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size is None:
            maximum, average = x.amax(self.dim, keepdim=True), x.mean(self.dim, keepdim=True)
        else:
            pad = self.kernel_size // 2
            maximum = F.max_pool2d(x, self.kernel_size, 1, pad)
            average = F.avg_pool2d(x, self.kernel_size, 1, pad, count_include_pad=False)
        blend = torch.sigmoid(self.logit)
        return blend * maximum + (1 - blend) * average


class ChannelAttention(nn.Module):
    """CNN-1, eq. (10): channel weights ``v = σ(Σ W2·δ(W1·z_i))`` from Avg/Max/MixPool of Q, K, V."""

    def __init__(self, dim: int, reduction: int) -> None:
        super().__init__()
        hidden = max(8, dim // reduction)
        self.mix_pool = MixPool(dim=1)
        self.reduce = nn.Linear(dim, hidden)  # W1
        self.expand = nn.Linear(hidden, dim)  # W2

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # q, k, v: [B, N, C] -> [B, 3, C]: z1 = AvgPool(Q), z2 = MaxPool(K), z3 = MixPool(V)
        pooled = torch.cat([q.mean(1, keepdim=True), k.amax(1, keepdim=True), self.mix_pool(v)], dim=1)
        return torch.sigmoid(self.expand(F.relu(self.reduce(pooled))).sum(1, keepdim=True))  # [B, 1, C]


class SpatialAttention(nn.Module):
    """CNN-2, eq. (11): ``v̂ ⊙ σ(f7×7([mean_c v̂; max_c v̂; x̂_att]))`` (CBAM's spatial gate)."""

    def __init__(self, with_transformer_map: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3 if with_transformer_map else 2, 1, kernel_size=7, padding=3)

    def forward(
        self, scaled_value: torch.Tensor, transformer_map: torch.Tensor | None, size: tuple[int, int]
    ) -> torch.Tensor:
        # scaled_value: [B, N, C]; transformer_map: [B, N, 1] or None
        maps = [scaled_value.mean(-1, keepdim=True), scaled_value.amax(-1, keepdim=True)]
        if transformer_map is not None:
            maps.append(transformer_map)
        stacked = torch.cat(maps, dim=-1).transpose(1, 2).unflatten(2, size)  # [B, 2|3, H, W]
        gate = torch.sigmoid(self.conv(stacked)).flatten(2).transpose(1, 2)  # [B, N, 1]
        return scaled_value * gate


class TransformerToCNN(nn.Module):
    """T-to-C interaction, eq. (12): ``x̂_att = σ(MixPool_3×3(δ(MixPool_C(X_att))))``, one channel."""

    def __init__(self) -> None:
        super().__init__()
        self.channel_pool = MixPool(dim=-1)
        self.spatial_pool = MixPool(kernel_size=3)

    def forward(self, x_att: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        reduced = F.relu(self.channel_pool(x_att)).transpose(1, 2).unflatten(2, size)  # [B, 1, H, W]
        return torch.sigmoid(self.spatial_pool(reduced)).flatten(2).transpose(1, 2)  # [B, N, 1]


class TransformerBranch(nn.Module):
    """Masked global attention with the stage token Z (eqs. 4–8) plus local window attention (eq. 9)."""

    def __init__(self, dim: int, heads: int, window: int, span_init: float, span_slope: float) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.span_slope = span_slope
        self.span = nn.Parameter(torch.full((heads,), float(span_init)))  # e of eq. (4), per head
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        token: torch.Tensor | None,
        channel_weights: torch.Tensor | None,
        geometry: PatchGeometry,
        size: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q, k, v`` ``[B, h, N, d]``; returns ``(proj(X_att), X_att [B, N, C], Z [B, h, N, d])``."""
        offsets_mask = span_log_mask(geometry.offsets, self.span, self.span_slope, q.dtype)  # [h, H·W]
        log_mask = geometry.gather(offsets_mask)[None]  # [1, h, N, N]
        if token is None:
            token = F.scaled_dot_product_attention(q, k, v, attn_mask=log_mask)  # eq. (5), stage start
        value = v
        if channel_weights is not None:
            value = v * _split_heads(channel_weights, self.heads)  # eq. (7): V̂ = V ⊙ v
        x_global = F.scaled_dot_product_attention(token, k, value, attn_mask=log_mask)  # eqs. (6), (8)
        x_local = window_attention(q, k, v, *size, self.window)
        x_att = _merge_heads(x_global + x_local)  # eq. (9)
        return self.proj(x_att), x_att, token


class BranchFusion(nn.Module):
    """The two branch outputs summed with learned convex weights (``weighted``) or 0.5/0.5 (fixed)."""

    def __init__(self, weighted: bool) -> None:
        super().__init__()
        if weighted:
            self.logits = nn.Parameter(torch.zeros(2))
        else:
            self.register_buffer("logits", torch.zeros(2), persistent=False)

    def forward(self, transformer_out: torch.Tensor, cnn_out: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.logits, dim=0)
        return weights[0] * transformer_out + weights[1] * cnn_out


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float) -> None:
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


def _depthwise_conv_on_tokens(conv: nn.Conv2d, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A ``[B, C, H, W]`` conv applied to tokens ``[B, N = H·W, C]``; tokens out.

    The map is made contiguous first: a depthwise conv on the channels-last view the transpose
    gives is ~5× slower on CPU (PyTorch 2.x).
    """
    return conv(tokens.transpose(1, 2).unflatten(2, size).contiguous()).flatten(2).transpose(1, 2)


class ConvMlp(nn.Module):
    """The MLP with a 3×3 depthwise conv between its linears (PVTv2's ConvFFN, CMT's IRFFN)."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.fc1(x)
        return self.fc2(self.act(x + _depthwise_conv_on_tokens(self.dwconv, x, size)))


class LocalPerception(nn.Module):
    """CMT's local perception unit ``x + DWConv3×3(x)``: locality and (conditional) position."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return x + _depthwise_conv_on_tokens(self.dwconv, x, size)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)  # [B, N, C] -> [B, h, N, d]


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(2)  # [B, h, N, d] -> [B, N, C]


# --------------------------------------------------------------------------------------------
# Config rows
# --------------------------------------------------------------------------------------------

Branches = Literal["both", "transformer", "cnn"]
Fusion = Literal["weighted", "fixed"]


@dataclass(frozen=True)
class CTIConfig:
    """One row of the CTI family; the ablation switches mirror the paper's Table 3."""

    depths: tuple[int, ...] = (2, 2, 6, 14, 2)
    widths: tuple[int, ...] = (64, 96, 192, 384, 768)
    stem_strides: tuple[int, int] = (1, 3)  # of the stem's first and last 3×3 convs
    stem_width: int = 32
    head_width: int = 1280
    head_dim: int = 32
    mlp_ratio: float = 4.0
    window_size: int = 7
    span_init: float = 7.0  # e of eq. (4), learnable
    span_slope: float = 0.5  # H of eq. (4), fixed
    channel_reduction: int = 16  # C / C0 of eq. (10)
    branches: Branches = "both"
    c_to_t: bool = True
    t_to_c: bool = True
    fusion: Fusion = "weighted"
    depthwise_convs: bool = False  # CMT's local perception unit + a depthwise-conv MLP (not in the paper)

    def __post_init__(self) -> None:
        for name in ("depths", "widths", "stem_strides"):  # a model card's JSON gives lists
            object.__setattr__(self, name, tuple(int(value) for value in getattr(self, name)))
        if len(self.stem_strides) != 2 or min(self.stem_strides) < 1:
            raise ValueError(f"stem_strides must be two positive strides, got {self.stem_strides}")
        if len(self.depths) != len(self.widths) or not self.depths:
            raise ValueError(f"depths {self.depths} and widths {self.widths} must be non-empty and of equal length")
        if self.branches not in ("both", "transformer", "cnn"):
            raise ValueError(f"branches must be 'both', 'transformer' or 'cnn', not {self.branches!r}")
        if self.fusion not in ("weighted", "fixed"):
            raise ValueError(f"fusion must be 'weighted' or 'fixed', not {self.fusion!r}")
        if self.branches != "both" and (self.c_to_t or self.t_to_c):
            raise ValueError(
                f"c_to_t={self.c_to_t}, t_to_c={self.t_to_c} need branches='both', not {self.branches!r}"
            )
        for width in self.widths:
            if width % min(self.head_dim, width):
                raise ValueError(f"width {width} is not a multiple of head_dim {self.head_dim}")

    @property
    def total_stride(self) -> int:
        """Input pixels per final feature-map cell: sizes divisible by it need no padding."""
        return self.stem_strides[0] * self.stem_strides[1] * 2 ** (len(self.depths) - 1)


# Table 3, top to bottom (the last row, everything on, is the base config itself)
TABLE3_ABLATIONS: dict[str, dict[str, object]] = {
    "transformer-only": dict(branches="transformer", c_to_t=False, t_to_c=False),
    "cnn-only": dict(branches="cnn", c_to_t=False, t_to_c=False),
    "no-interaction": dict(c_to_t=False, t_to_c=False, fusion="fixed"),
    "c-to-t": dict(c_to_t=True, t_to_c=False, fusion="fixed"),
    "t-to-c": dict(c_to_t=False, t_to_c=True, fusion="fixed"),
    "bidirectional": dict(c_to_t=True, t_to_c=True, fusion="fixed"),
}

_SIZES: dict[str, CTIConfig] = {
    # the paper's network (Section 2.1); stem stride 3 lands on its 44 M params / 23 GMACs
    "cti-paper": CTIConfig(),
    # CPU bench PCs
    "cti-small": CTIConfig(
        depths=(1, 1, 3, 5, 1), widths=(32, 64, 128, 256, 512), stem_strides=(2, 2), stem_width=24, head_width=1024
    ),
    "cti-tiny": CTIConfig(
        depths=(1, 1, 2, 2, 1), widths=(32, 64, 96, 192, 384), stem_strides=(2, 4), stem_width=16, head_width=512
    ),
}
# the CPU sizes with depthwise convs in every block: the data-efficient variant for small datasets
_SIZES.update(
    {f"{name}-dwconv": dataclasses.replace(_SIZES[name], depthwise_convs=True) for name in ("cti-small", "cti-tiny")}
)

CONFIGS: dict[str, CTIConfig] = {
    **_SIZES,
    **{
        f"{size}-{ablation}": dataclasses.replace(config, **switches)
        for size, config in _SIZES.items()
        for ablation, switches in TABLE3_ABLATIONS.items()
    },
}


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


class CTIBlock(nn.Module):
    """One CTI block (Figs. 2–3): Q/K/V, transformer and CNN branches, interactions, fusion, MLP."""

    def __init__(self, dim: int, config: CTIConfig) -> None:
        super().__init__()
        self.heads = dim // min(config.head_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)  # the three parallel 1×1 convs
        use_transformer = config.branches in ("both", "transformer")
        use_cnn = config.branches in ("both", "cnn")
        self.transformer = (
            TransformerBranch(dim, self.heads, config.window_size, config.span_init, config.span_slope)
            if use_transformer
            else None
        )
        self.channel_attention = ChannelAttention(dim, config.channel_reduction) if use_cnn else None
        self.spatial_attention = SpatialAttention(config.t_to_c) if use_cnn else None
        self.c_to_t = config.c_to_t
        self.t_to_c = TransformerToCNN() if config.t_to_c else None
        self.fusion = BranchFusion(config.fusion == "weighted") if use_transformer and use_cnn else None
        self.local_perception = LocalPerception(dim) if config.depthwise_convs else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvMlp(dim, config.mlp_ratio) if config.depthwise_convs else Mlp(dim, config.mlp_ratio)

    def forward(
        self, x: torch.Tensor, token: torch.Tensor | None, geometry: PatchGeometry | None, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``[B, N, C]`` and the stage token Z (None in a stage's first block)."""
        if self.local_perception is not None:
            x = self.local_perception(x, size)
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)  # [B, N, C] each
        channel_weights = self.channel_attention(q, k, v) if self.channel_attention is not None else None

        transformer_out = x_att = None
        if self.transformer is not None:
            transformer_out, x_att, token = self.transformer(
                _split_heads(q, self.heads),
                _split_heads(k, self.heads),
                _split_heads(v, self.heads),
                token,
                channel_weights if self.c_to_t else None,
                geometry,
                size,
            )

        cnn_out = None
        if self.spatial_attention is not None:
            transformer_map = self.t_to_c(x_att, size) if self.t_to_c is not None else None
            cnn_out = self.spatial_attention(v * channel_weights, transformer_map, size)

        if self.fusion is not None:
            fused = self.fusion(transformer_out, cnn_out)
        else:
            fused = transformer_out if transformer_out is not None else cnn_out
        x = x + fused
        mlp_out = self.mlp(self.norm2(x), size) if isinstance(self.mlp, ConvMlp) else self.mlp(self.norm2(x))
        return x + mlp_out, token


class PadToMultiple(nn.Module):
    """Zero-pads the bottom and right of ``[B, C, H, W]`` to multiples of ``multiple``, so that a
    following ``multiple``-strided patch conv sees every pixel (ceil-mode striding)."""

    def __init__(self, multiple: int) -> None:
        super().__init__()
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return F.pad(x, (0, -width % self.multiple, 0, -height % self.multiple))


class Downsample(nn.Sequential):
    """2×2 stride-2 conv between stages; an odd side is zero-padded by one first."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(PadToMultiple(2), nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2))


class CTIStage(nn.Module):
    """An optional downsampling conv, then ``depth`` CTI blocks sharing the token Z (eq. 6)."""

    def __init__(self, in_dim: int, dim: int, depth: int, config: CTIConfig, downsample: bool) -> None:
        super().__init__()
        self.downsample = Downsample(in_dim, dim) if downsample else nn.Identity()
        self.blocks = nn.ModuleList(CTIBlock(dim, config) for _ in range(depth))
        self.uses_attention = config.branches != "cnn"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        _, channels, height, width = x.shape
        geometry = patch_geometry(height, width, x.device) if self.uses_attention else None
        tokens = x.flatten(2).transpose(1, 2)  # [B, N, C]
        token = None
        for block in self.blocks:
            tokens, token = block(tokens, token, geometry, (height, width))
        return tokens.transpose(1, 2).reshape(-1, channels, height, width)


class ClassifierHead(nn.Module):
    """Projection (1×1 conv + BN) → sigmoid → global average pooling → FC (Section 2.1)."""

    def __init__(self, in_dim: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.proj = Conv2dNormActivation(in_dim, width, kernel_size=1, activation_layer=nn.Sigmoid, inplace=None)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.proj(features)).flatten(1))


def _stem_conv(in_dim: int, out_dim: int, stride: int, activation: type[nn.Module] | None) -> nn.Module:
    """A 3×3 conv (padding 1: ``ceil(H / stride)`` out); for a stride above 3, where a 3×3 kernel
    would skip pixels, a ``stride × stride`` patch conv on the input padded to a multiple."""
    if stride <= 3:
        return Conv2dNormActivation(in_dim, out_dim, 3, stride, activation_layer=activation, inplace=None)
    return nn.Sequential(
        PadToMultiple(stride),
        Conv2dNormActivation(in_dim, out_dim, stride, stride, padding=0, activation_layer=activation, inplace=None),
    )


def _stem(in_chans: int, config: CTIConfig) -> nn.Sequential:
    """3×3 conv → 1×1 conv → 3×3 conv to C1 (Section 2.1)."""
    first, last = config.stem_strides
    return nn.Sequential(
        _stem_conv(in_chans, config.stem_width, first, nn.GELU),
        Conv2dNormActivation(config.stem_width, 2 * config.stem_width, 1, activation_layer=nn.GELU, inplace=None),
        _stem_conv(2 * config.stem_width, config.widths[0], last, None),
    )


class CTI(nn.Module):
    """The CTI classifier. ``forward(x [B, C, H, W]) -> logits [B, num_classes]``.

    ``forward_features`` returns the last stage's map ``[B, C5, ⌈H/s⌉, ⌈W/s⌉]`` (``s`` =
    ``config.total_stride``). ``cam_target_layer`` names the deepest stage whose stride is at
    most 32 (7×7 or finer at 224): the last stage of the small configs is 2×2 there, too
    coarse for an attention map that has to point at a lid or a lead row.
    """

    def __init__(self, config: CTIConfig, num_classes: int = 3, in_chans: int = 3) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.default_input_size: tuple[int, int, int] = (in_chans, 224, 224)
        stem_stride = config.stem_strides[0] * config.stem_strides[1]
        cam_stage = max(i for i in range(len(config.depths)) if i == 0 or stem_stride * 2**i <= 32)
        self.cam_target_layer = f"stages.{cam_stage}"
        self.stem = _stem(in_chans, config)
        in_dims = (config.widths[0], *config.widths[:-1])
        self.stages = nn.ModuleList(
            CTIStage(in_dim, dim, depth, config, downsample=index > 0)
            for index, (in_dim, dim, depth) in enumerate(zip(in_dims, config.widths, config.depths))
        )
        self.head = ClassifierHead(config.widths[-1], config.head_width, num_classes)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected an input [B, {self.in_chans}, H, W], got {tuple(x.shape)}")
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------------


def build(config_name: str, num_classes: int = 3, in_chans: int = 3, **overrides: object) -> CTI:
    """The network of row ``config_name``; ``overrides`` replace fields of its ``CTIConfig``."""
    try:
        config = CONFIGS[config_name]
    except KeyError:
        raise KeyError(f"unknown CTI config {config_name!r}; known: {', '.join(CONFIGS)}") from None
    unknown = set(overrides) - {field.name for field in dataclasses.fields(CTIConfig)}
    if unknown:
        raise TypeError(f"unknown CTIConfig fields {sorted(unknown)} for {config_name!r}")
    return CTI(dataclasses.replace(config, **overrides), num_classes=num_classes, in_chans=in_chans)
