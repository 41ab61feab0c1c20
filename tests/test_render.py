"""Overlays on arrays: heatmap colours, blending, defect boxes and labels, the composed view."""

from __future__ import annotations

import numpy as np
import pytest

from station.inference import AttentionMaps, Defect, InspectionResult
from station.render import blend, class_color, colorize_heatmap, compose_overlay, draw_defects


def _image(height: int = 240, width: int = 320, value: int = 90) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def _result(defects=(), material_map=None, defect_map=None, attention=True) -> InspectionResult:
    return InspectionResult(
        request_id=1,
        material=None,
        defects=list(defects),
        attention=AttentionMaps(material_map, defect_map) if attention else None,
        timings_ms={},
        device="CPU",
        models=(),
        thresholds={},
    )


def test_colorize_heatmap_is_fixed_scale_rgb():
    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (4, 1))
    colours = colorize_heatmap(ramp)
    assert colours.shape == (4, 256, 3) and colours.dtype == np.uint8
    luminance = colours[0].astype(float) @ [0.299, 0.587, 0.114]
    assert luminance[-1] > luminance[128] > luminance[0]  # inferno brightens monotonically
    # out-of-range and NaN values are clipped, not rescaled per image
    odd = np.array([[-3.0, np.nan, 0.0, 7.0, 1.0]], dtype=np.float32)
    out = colorize_heatmap(odd)[0]
    assert (out[0] == out[2]).all() and (out[1] == out[2]).all() and (out[3] == out[4]).all()
    half = colorize_heatmap(np.full((2, 2), 0.5, np.float32))
    assert (half == colours[0, 128]).all()  # a flat map keeps its level: no min-max stretch


def test_colorize_rejects_wrong_input():
    with pytest.raises(ValueError, match="HxW"):
        colorize_heatmap(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="colormap"):
        colorize_heatmap(np.zeros((4, 4), np.float32), colormap="nope")


def test_blend_scalar_and_per_pixel_opacity():
    image, overlay = _image(value=0), _image(value=200)
    assert (blend(image, overlay, 0.0) == 0).all()
    assert (blend(image, overlay, 1.0) == 200).all()
    assert np.abs(blend(image, overlay, 0.5).astype(int) - 100).max() <= 1
    alpha = np.zeros(image.shape[:2], np.float32)
    alpha[:, 160:] = 1.0
    mixed = blend(image, overlay, alpha)
    assert (mixed[:, :160] == 0).all() and (mixed[:, 160:] == 200).all()
    with pytest.raises(ValueError, match="overlay shape"):
        blend(image, _image(10, 10), 0.5)


def test_tiny_defect_stays_visible_inside_its_outline():
    image = _image()
    image[100:106, 150:156] = 250  # a 6x6 px defect
    defect = Defect(box=(150.0, 100.0, 156.0, 106.0), label="crack", score=0.91)
    drawn = draw_defects(image, [defect])
    assert (drawn[100:106, 150:156] == 250).all()  # the outline does not cover the defect
    ring = np.ones(image.shape[:2], bool)
    ring[96:110, 146:160] = False
    changed = (drawn != image).any(axis=2)
    assert changed[96:110, 146:160].sum() > 20  # outline right around it
    assert changed[:100, 140:260].sum() > 100  # the label tag above it
    assert (image[100:106, 150:156] == 250).all() and image[0, 0, 0] == 90  # input untouched


def test_defects_at_the_border_and_label_placement():
    image = _image(120, 160)
    corner = Defect(box=(0.0, 0.0, 8.0, 8.0), label="void", score=0.5)
    drawn = draw_defects(image, [corner])
    changed = (drawn != image).any(axis=2)
    assert changed[9:40, 0:40].any()  # no room above: the tag goes below the box


def test_tags_of_neighbouring_defects_do_not_cover_each_other():
    image = _image(240, 320)
    defects = [Defect(box=(100.0 + 12 * i, 120.0, 108.0 + 12 * i, 128.0), label="pin-hole", score=0.9 - 0.1 * i)
               for i in range(4)]
    placed: list = []
    from station.render import _make_tag, _overlap_area

    for index, defect in enumerate(defects):
        x1, y1, x2, y2 = (int(v) for v in defect.box)
        _make_tag(f"{defect.label} {defect.score:.2f}", (x1 - 5, y1 - 5, x2 + 4, y2 + 4), (255, 0, 0), 1,
                  image.shape[:2], placed)
    assert all(_overlap_area(a, b) == 0 for i, a in enumerate(placed) for b in placed[i + 1:])
    assert all(0 <= r[0] and r[2] <= 320 and 0 <= r[1] and r[3] <= 240 for r in placed)
    drawn = draw_defects(image, defects)
    assert (drawn != image).any(axis=2)[90:160, 60:260].sum() > 4 * 300  # four readable tags around the row


def test_min_score_filter_and_highlight():
    image = _image()
    defects = [
        Defect(box=(20.0, 40.0, 30.0, 50.0), label="crack", score=0.9),
        Defect(box=(200.0, 150.0, 210.0, 160.0), label="void", score=0.2),
    ]
    filtered = draw_defects(image, defects, min_score=0.5)
    assert not (filtered[140:170, 190:220] != image[140:170, 190:220]).any()
    highlighted = draw_defects(image, defects, min_score=0.5, highlight_index=1)
    assert (highlighted[140:170, 190:220] != image[140:170, 190:220]).any()  # the selected one always shows
    plain = draw_defects(image, defects)
    thick = draw_defects(image, defects, highlight_index=0)
    region = (slice(25, 65), slice(5, 45))
    assert (thick[region] != image[region]).any(axis=2).sum() > (plain[region] != image[region]).any(axis=2).sum()


def test_class_colours():
    assert class_color("crack") == class_color("crack")  # stable across runs (crc32, not hash())
    assert class_color("crack", {"crack": (1, 2, 3)}) == (1, 2, 3)
    crack = Defect((50.0, 50.0, 60.0, 60.0), "crack", 0.8)
    drawn = draw_defects(_image(), [crack], class_colors={"crack": (255, 0, 0)})
    assert ((drawn == [255, 0, 0]).all(axis=2)).sum() > 10


def test_compose_overlay_cold_map_leaves_image_alone():
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cold = np.zeros((120, 160), np.float32)
    out = compose_overlay(image, _result(material_map=cold))
    assert (out == image).all() and out is not image
    hot = cold.copy()
    hot[40:80, 60:100] = 1.0
    out = compose_overlay(image, _result(material_map=hot), opacity=0.45)
    changed = (out != image).any(axis=2)
    assert changed[45:75, 65:95].all() and not changed[:30].any()


def test_compose_overlay_options():
    image = _image(120, 160)
    material_map = np.ones((120, 160), np.float32)
    defect_map = np.zeros((120, 160), np.float32)
    defect = Defect((70.0, 50.0, 80.0, 60.0), "crack", 0.7)
    result = _result([defect], material_map, defect_map)
    assert (compose_overlay(image, result, attention="defects", show_boxes=False) == image).all()
    assert (compose_overlay(image, result, show_attention=False, show_boxes=False) == image).all()
    assert (compose_overlay(image, result, show_attention=False) != image).any()  # boxes only
    assert (compose_overlay(image, result, show_boxes=False) != image).all(axis=2).mean() > 0.9
    no_maps = _result([defect], attention=False)
    assert compose_overlay(image, no_maps).shape == image.shape
    with pytest.raises(ValueError, match="attention map"):
        compose_overlay(image, _result(material_map=np.zeros((10, 10), np.float32)))
    with pytest.raises(ValueError, match="'material' or 'defects'"):
        compose_overlay(image, result, attention="both")


def test_a_small_image_is_drawn_enlarged_so_its_tags_stay_small_on_screen():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    defect = Defect((80.0, 90.0, 100.0, 110.0), "scratches", 0.9)
    plain = compose_overlay(image, _result([defect], attention=False))
    enlarged = compose_overlay(image, _result([defect], attention=False), upscale_to=720)
    assert plain.shape == image.shape and enlarged.shape == (800, 800, 3)  # whole factor 4
    # the pixels stay crisp 4x4 blocks away from the drawing, and the defect itself is not drawn over
    assert (enlarged[:40:4, :40:4] == image[:10, :10]).all() and (enlarged[:40, :40:4] == enlarged[:40, 1:40:4]).all()
    assert (enlarged[4 * 90:4 * 110, 4 * 80:4 * 100] == np.repeat(np.repeat(image[90:110, 80:100], 4, 0), 4, 1)).all()
    # the outline and tag cover a smaller share of the enlarged image than of the plain one
    base = np.repeat(np.repeat(image, 4, 0), 4, 1)
    assert (enlarged != base).any(axis=2).mean() < 0.5 * (plain != image).any(axis=2).mean()
    big = np.zeros((960, 1280, 3), np.uint8)
    assert compose_overlay(big, _result([defect], attention=False), upscale_to=720).shape == big.shape
