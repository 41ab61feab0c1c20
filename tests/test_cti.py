"""The CTI classifier: mask (eq. 4), masked attention (eq. 5), shapes, ablations, gradients, bf16."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from station.ml.cti import (
    CONFIGS,
    ConvMlp,
    LocalPerception,
    CTIConfig,
    adaptive_span_mask,
    build,
    patch_geometry,
    span_log_mask,
    window_attention,
)
from station.ml.profile import count_gmacs, count_params

SMALL_CONFIGS = [name for name in CONFIGS if not name.startswith("cti-paper")]  # tiny and small
TINY_CONFIGS = [name for name in CONFIGS if name.startswith("cti-tiny")]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def explicit_masked_attention(q, k, v, mask):
    """Eq. (5) as written: ``Me·exp(b) / Σ Me·exp(b)`` with ``b = q·kᵀ/√d``, then times V."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    weights = mask * torch.exp(scores - scores.amax(-1, keepdim=True))
    return (weights / weights.sum(-1, keepdim=True)) @ v


# ---------------------------------------------------------------- mask function (eq. 4)


def test_mask_is_h_at_distance_zero_monotone_and_saturating():
    distances = torch.linspace(0, 30, 301)
    span = torch.tensor(7.0)
    mask = adaptive_span_mask(distances, span, slope=0.5)
    assert mask[0].item() == pytest.approx(0.5)
    assert torch.all(mask[1:] >= mask[:-1])
    assert torch.all(mask[distances >= 7.0] == 1.0)
    assert torch.all(mask[distances < 7.0] < 1.0)
    # eq. (4) as printed: (x − H·x + H·e) / e
    inside = distances[distances < 7.0]
    torch.testing.assert_close(mask[distances < 7.0], (inside - 0.5 * inside + 0.5 * 7.0) / 7.0)


def test_log_mask_is_finite_even_where_the_mask_is_zero():
    distances = torch.arange(10.0)
    # slope H = 0 makes Me(0) = 0: the floor keeps the additive mask finite
    log_mask = span_log_mask(distances, torch.tensor([3.0, 0.0, -5.0]), slope=0.0, dtype=torch.float32)
    assert log_mask.shape == (3, 10)
    assert torch.isfinite(log_mask).all()
    assert log_mask[0, 0] < -80  # ~log(1e-38): weight ~0
    assert log_mask[0, 5] == 0.0


def test_patch_geometry_gives_euclidean_distances_between_grid_positions():
    geometry = patch_geometry(5, 3, torch.device("cpu"))
    rows, cols = torch.meshgrid(torch.arange(5.0), torch.arange(3.0), indexing="ij")
    coords = torch.stack([rows, cols], -1).reshape(-1, 2)
    expected = (coords[:, None] - coords[None]).norm(dim=-1)
    torch.testing.assert_close(geometry.distances(), expected)
    assert torch.all(geometry.distances().diagonal() == 0)


# ---------------------------------------------------------------- masked attention (eq. 5)


def test_sdpa_with_log_mask_equals_explicit_masked_softmax():
    geometry = patch_geometry(4, 6, torch.device("cpu"))
    q, k, v = torch.randn(3, 2, 2, 24, 8).unbind(0)
    span = torch.tensor([2.0, 5.0])
    log_mask = geometry.gather(span_log_mask(geometry.offsets, span, 0.5, torch.float32))
    mask = adaptive_span_mask(geometry.distances(), span[:, None, None], 0.5)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=log_mask[None])
    torch.testing.assert_close(out, explicit_masked_attention(q, k, v, mask), rtol=1e-5, atol=1e-5)


def test_masked_attention_equals_plain_softmax_attention_when_mask_is_all_ones():
    geometry = patch_geometry(5, 5, torch.device("cpu"))
    # H = 1 makes Me ≡ 1 at every distance
    log_mask = geometry.gather(span_log_mask(geometry.offsets, torch.tensor([3.0]), 1.0, torch.float32))
    assert torch.all(log_mask == 0)
    q, k, v = torch.randn(3, 2, 1, 25, 16).unbind(0)
    masked = F.scaled_dot_product_attention(q, k, v, attn_mask=log_mask[None])
    plain = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1) @ v
    torch.testing.assert_close(masked, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked, F.scaled_dot_product_attention(q, k, v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("height,width", [(14, 14), (9, 10), (3, 5)])
def test_window_attention_equals_attention_inside_each_clipped_window(height, width):
    q, k, v = torch.randn(3, 2, 2, height * width, 8).unbind(0)
    out = window_attention(q, k, v, height, width, window=7)
    win_h, win_w = min(7, height), min(7, width)
    grid = torch.arange(height * width).view(height, width)
    expected = torch.empty_like(out)
    for top in range(0, height, win_h):
        for left in range(0, width, win_w):
            members = grid[top : top + win_h, left : left + win_w].flatten()
            inside = (q[:, :, members], k[:, :, members], v[:, :, members])
            expected[:, :, members] = F.scaled_dot_product_attention(*inside)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- configs and shapes


def test_table3_ablation_rows_exist_for_every_size():
    for size in ("cti-paper", "cti-small", "cti-tiny"):
        assert CONFIGS[size].branches == "both" and CONFIGS[size].fusion == "weighted"
        assert CONFIGS[f"{size}-transformer-only"].branches == "transformer"
        assert CONFIGS[f"{size}-cnn-only"].branches == "cnn"
        no_interaction = CONFIGS[f"{size}-no-interaction"]
        assert (no_interaction.c_to_t, no_interaction.t_to_c, no_interaction.fusion) == (False, False, "fixed")
        assert (CONFIGS[f"{size}-c-to-t"].c_to_t, CONFIGS[f"{size}-c-to-t"].t_to_c) == (True, False)
        assert (CONFIGS[f"{size}-t-to-c"].c_to_t, CONFIGS[f"{size}-t-to-c"].t_to_c) == (False, True)
        bidirectional = CONFIGS[f"{size}-bidirectional"]
        assert (bidirectional.c_to_t, bidirectional.t_to_c, bidirectional.fusion) == (True, True, "fixed")


# every ablation at 224×224 in the tiny family; the small family's at 224 would cost seconds each
@pytest.mark.parametrize("name", SMALL_CONFIGS)
def test_output_shapes_at_224_and_a_non_square_size(name):
    model = build(name, num_classes=5).eval()
    assert model.default_input_size == (3, 224, 224)
    with torch.no_grad():
        if name.startswith("cti-tiny") or name == "cti-small":
            assert model(torch.rand(1, 3, 224, 224)).shape == (1, 5)
        assert model(torch.rand(2, 3, 120, 72)).shape == (2, 5)


def test_sizes_divisible_by_the_total_stride_map_exactly():
    model = build("cti-tiny").eval()
    stride = model.config.total_stride
    with torch.no_grad():
        features = model.forward_features(torch.rand(1, 3, stride, 3 * stride))
    assert features.shape == (1, 384, 1, 3)


@pytest.mark.parametrize("name", ["cti-tiny", "cti-small"])
@pytest.mark.parametrize("height,width", [(100, 37), (9, 9), (1, 300)])
def test_any_input_size_gives_a_ceil_divided_map(name, height, width):
    model = build(name).eval()
    stride = model.config.total_stride
    with torch.no_grad():
        features = model.forward_features(torch.rand(1, 3, height, width))
    assert features.shape[-2:] == (math.ceil(height / stride), math.ceil(width / stride))
    assert torch.isfinite(model.forward_head(features)).all()


def test_cti_paper_lands_on_the_papers_size():
    with torch.device("meta"):  # counted without computing: no weights, no arithmetic
        model = build("cti-paper")
    params, gmacs = count_params(model), count_gmacs(model, (3, 224, 224))
    assert 0.8 * 44e6 <= params <= 1.2 * 44e6, params
    assert 0.75 * 23 <= gmacs <= 1.25 * 23, gmacs


def test_attention_multiply_adds_count_on_the_cpu_as_on_meta():
    """On the CPU, scaled_dot_product_attention runs a flash kernel torch's counter has no formula
    for; cti-paper then counted 5.16 instead of 19.25 GMACs. Meta tensors take the counted math path."""
    torch.manual_seed(0)
    query, key, value = torch.rand(1, 2, 50, 16), torch.rand(1, 2, 70, 16), torch.rand(1, 2, 70, 8)

    class Attention(torch.nn.Module):
        def forward(self, q):
            return torch.nn.functional.scaled_dot_product_attention(q, key.to(q.device), value.to(q.device))

    assert count_gmacs(Attention(), (2, 50, 16)) == pytest.approx(2 * 50 * 70 * (16 + 8) / 1e9)
    on_cpu = count_gmacs(build("cti-tiny"), (3, 64, 64))
    with torch.device("meta"):
        on_meta = count_gmacs(build("cti-tiny"), (3, 64, 64))
    assert on_cpu == pytest.approx(on_meta, rel=1e-6)


def test_cti_paper_runs():
    with torch.no_grad():
        assert build("cti-paper").eval()(torch.rand(1, 3, 64, 48)).shape == (1, 3)


def test_features_head_and_cam_target():
    model = build("cti-tiny", in_chans=1, num_classes=4).eval()
    x = torch.rand(2, 1, 96, 160)
    with torch.no_grad():
        features = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(features), model(x))
    assert features.shape == (2, 384, 1, 2)
    captured = []
    target = model.get_submodule(model.cam_target_layer)
    handle = target.register_forward_hook(lambda module, inputs, output: captured.append(output))
    with torch.no_grad():
        model(x)
    handle.remove()
    # the CAM layer is the deepest stage at stride <= 32: stage 2 of cti-tiny (stem stride 8)
    assert model.cam_target_layer == "stages.2"
    assert captured[0].shape == (2, 96, 3, 5)
    assert model.num_classes == 4 and model.default_input_size == (1, 224, 224)
    assert isinstance(model.config, CTIConfig)


def test_wrong_channel_count_names_the_shape():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\].*\(1, 1, 32, 32\)"):
        build("cti-tiny")(torch.rand(1, 1, 32, 32))


def test_builder_validates_names_and_overrides():
    with pytest.raises(KeyError, match="cti-huge"):
        build("cti-huge")
    with pytest.raises(TypeError, match="depth"):
        build("cti-tiny", depth=3)
    with pytest.raises(ValueError, match="branches='both'"):
        build("cti-tiny", branches="cnn")
    model = build("cti-tiny", branches="cnn", c_to_t=False, t_to_c=False, window_size=5)
    assert model.config.window_size == 5 and model.config.branches == "cnn"
    with pytest.raises(ValueError, match="fusion"):
        dataclasses.replace(CONFIGS["cti-tiny"], fusion="mean")
    from_json = build("cti-tiny", depths=[1, 1, 1, 1, 1], stem_strides=[2, 4]).config
    assert from_json.depths == (1, 1, 1, 1, 1) and from_json.stem_strides == (2, 4)


def test_stage_token_is_computed_by_the_first_block_and_carried():
    model = build("cti-tiny")
    block = model.stages[0].blocks[0]
    geometry = patch_geometry(4, 4, torch.device("cpu"))
    x = torch.randn(1, 16, 32)
    _, token = block(x, None, geometry, (4, 4))
    assert token.shape == (1, block.heads, 16, 32 // block.heads)
    given = torch.randn_like(token)
    _, carried = block(x, given, geometry, (4, 4))
    assert carried is given


# ---------------------------------------------------------------- gradients, ablations, bf16


def test_gradients_reach_span_mixpool_and_fusion_weights():
    model = build("cti-tiny")
    model(torch.rand(2, 3, 64, 96)).logsumexp(-1).sum().backward()
    block = model.stages[0].blocks[0]
    named = {
        "e (span)": block.transformer.span,
        "CNN-1 MixPool": block.channel_attention.mix_pool.logit,
        "T-to-C channel MixPool": block.t_to_c.channel_pool.logit,
        "T-to-C spatial MixPool": block.t_to_c.spatial_pool.logit,
        "fusion weights": block.fusion.logits,
    }
    for what, parameter in named.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, what


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_forward_backward_reaches_every_parameter(name):
    model = build(name)
    logits = model(torch.rand(2, 3, 64, 80))
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_fixed_fusion_has_no_learnable_weights():
    model = build("cti-tiny-bidirectional")
    assert not any("fusion" in name for name, _ in model.named_parameters())
    assert model.stages[0].blocks[0].fusion is not None


def test_dwconv_rows_add_depthwise_convs_to_every_block_and_change_nothing_else():
    for size in ("cti-tiny", "cti-small"):
        plain, local = build(size), build(f"{size}-dwconv")
        assert dataclasses.replace(local.config, depthwise_convs=False) == plain.config
        blocks = [block for stage in local.stages for block in stage.blocks]
        assert all(isinstance(block.local_perception, LocalPerception) for block in blocks)
        assert all(isinstance(block.mlp, ConvMlp) for block in blocks)
        assert all(block.mlp.dwconv.groups == block.mlp.dwconv.in_channels for block in blocks)
        assert count_params(plain) < count_params(local) < 1.05 * count_params(plain)
    assert CONFIGS["cti-tiny-dwconv-cnn-only"].depthwise_convs


def test_depthwise_conv_sees_neighbouring_tokens():
    perception = LocalPerception(4)
    tokens = torch.zeros(1, 9, 4)
    tokens[0, 4] = 1.0  # the centre of a 3×3 map
    with torch.no_grad():
        out = perception(tokens, (3, 3)) - perception.dwconv.bias
    assert (out[0, [0, 1, 2, 3, 5, 6, 7, 8]].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("name", ["cti-tiny", "cti-tiny-transformer-only", "cti-tiny-cnn-only", "cti-tiny-dwconv"])
def test_no_nan_under_bf16_autocast(name):
    model = build(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(2, 3, 96, 128))
        loss = F.cross_entropy(logits.float(), torch.tensor([1, 0]))
    loss.backward()
    assert torch.isfinite(logits.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
