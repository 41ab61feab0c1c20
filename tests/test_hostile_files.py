"""Bad input never stops a review: every file of a folder gets exactly one row, whatever it is
(a decompression-bomb header, a looping or dangling link, a pipe, an unreadable or undecodable
file, an image over the pixel cap), and the run exits 0 with its reports. The same for
``station evaluate`` and the folder frame source. Runs the commands as a user would."""

from __future__ import annotations

import csv
import errno
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers_models import make_tiny_recipe
from helpers_review import write_recipe_file
from station.capture import images as images_module
from station.capture.base import FrameReadError
from station.capture.folder import ImageFolderSource
from station.capture.images import ImageReadError, decode_image, read_image
from station.cli import main as station_main
from station.synth import render_package


def png_header(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` RGB pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# file name -> what its error row says (None: an image, inspected)
EXPECTED = {
    "bomb.png": "too large to inspect: its header claims 1600 megapixels",
    "dangling.jpg": "a symbolic link to a missing file",
    "good-1.png": None,
    "good-2.jpg": None,
    "loop.png": "a symbolic link that loops",
    "notes.txt": "unsupported file type",
    "over-cap.png": "too large to inspect: its header claims 12000x9000 pixels; the limit is 100 megapixels",
    "pipe.png": "not a regular file",
    "text.png": "not an image",
    "truncated.jpg": "truncated or corrupt image data",
    "unreadable.png": "cannot open the file",
}


def write_hostile_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for index, name in enumerate(("good-1.png", "good-2.jpg")):
        image = render_package(index, size=(96, 128)).image
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    bomb = png_header(40000, 40000)
    assert len(bomb) < 100
    (folder / "bomb.png").write_bytes(bomb)
    (folder / "over-cap.png").write_bytes(png_header(12000, 9000))  # 108 MP: over the default cap of 100
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "dangling.jpg").symlink_to("gone.jpg")
    os.mkfifo(folder / "pipe.png")  # opening it would block the reader forever
    (folder / "text.png").write_text("a text file with an image's name\n")
    ok, jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    (folder / "truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    (folder / "unreadable.png").write_bytes((folder / "good-1.png").read_bytes())
    (folder / "notes.txt").write_text("operator notes\n")
    return folder


@pytest.fixture
def hostile_folder(tmp_path):
    return write_hostile_folder(tmp_path / "incoming")


@pytest.fixture
def recipe_file(tmp_path):
    return write_recipe_file(make_tiny_recipe(tmp_path / "models"), tmp_path / "recipe.json")


@pytest.fixture
def unreadable(monkeypatch):
    """Make ``unreadable.png`` unreadable to the batch runner: its open() refuses the file the way
    the kernel does a file without read permission (which root, running these tests in CI, ignores)."""
    from station.review import runner

    real_open = open

    def refusing_open(path, *args, **kwargs):
        if Path(path).name == "unreadable.png":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(runner, "open", refusing_open, raising=False)


def _batch(folder: Path, recipe_file: Path, out_dir: Path, *extra: str) -> tuple[int, list[dict], dict]:
    out_dir.mkdir(exist_ok=True)
    code = station_main([
        "batch", str(folder), "--recipe", str(recipe_file), "--out", str(out_dir / "report.csv"),
        "--json", str(out_dir / "summary.json"), "--pdf", str(out_dir / "summary.pdf"), "--device", "cpu",
        "--no-attention", "--quiet", *extra,
    ])
    with (out_dir / "report.csv").open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return code, rows, json.loads((out_dir / "summary.json").read_text())


def test_every_file_gets_one_row_and_the_batch_writes_its_reports(hostile_folder, recipe_file, unreadable, tmp_path):
    code, rows, summary = _batch(hostile_folder, recipe_file, tmp_path / "out")
    assert code == 0
    assert sorted(r["file"] for r in rows) == sorted(EXPECTED)
    for row in rows:
        expected = EXPECTED[row["file"]]
        if expected is None:
            assert row["status"] == "ok", row
        else:
            assert row["status"] == "error" and expected in row["error"], row
    assert summary["n_images"] == len(EXPECTED) and summary["n_errors"] == 9
    assert (tmp_path / "out" / "summary.pdf").read_bytes().startswith(b"%PDF")


def test_errors_that_are_not_the_files_content_are_read_again(hostile_folder, recipe_file, unreadable, tmp_path):
    assert _batch(hostile_folder, recipe_file, tmp_path / "first")[0] == 0
    (hostile_folder / "gone.jpg").write_bytes((hostile_folder / "good-2.jpg").read_bytes())  # the link's target is back
    code, rows, summary = _batch(hostile_folder, recipe_file, tmp_path / "second")
    assert code == 0
    by_name = {r["file"]: r for r in rows}
    assert by_name["dangling.jpg"]["status"] == "ok"
    assert by_name["gone.jpg"]["status"] == "ok"
    assert by_name["unreadable.png"]["status"] == "error"  # still refused, still a row, tried again
    assert by_name["text.png"]["status"] == "error"
    assert summary["n_inspected_this_run"] == 2


def test_the_pixel_cap_is_a_setting_of_the_command(hostile_folder, recipe_file, unreadable, tmp_path):
    code, rows, _ = _batch(hostile_folder, recipe_file, tmp_path / "out", "--max-megapixels", "150")
    by_name = {r["file"]: r for r in rows}
    assert code == 0
    # under a raised cap the 108 MP header is decoded (reduced) and found to hold no pixels at all
    assert "too large" not in by_name["over-cap.png"]["error"]
    assert "too large to inspect" in by_name["bomb.png"]["error"]


def test_a_storage_error_is_retried_by_the_next_run_not_kept_as_the_images_error(tmp_path, recipe_file, monkeypatch):
    from station.review import runner

    folder = tmp_path / "incoming"
    folder.mkdir()
    image = render_package(3, size=(96, 128)).image
    assert cv2.imwrite(str(folder / "part.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    def full_disk(path, attention):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(runner, "save_maps", full_disk)
        code = station_main(["batch", str(folder), "--recipe", str(recipe_file), "--out", str(tmp_path / "a.csv"),
                             "--device", "cpu", "--quiet"])
    assert code == 0
    with (tmp_path / "a.csv").open(encoding="utf-8-sig", newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["status"] == "error" and "the disk is full" in row["error"] and "next run" in row["error"]
    assert station_main(["batch", str(folder), "--recipe", str(recipe_file), "--out", str(tmp_path / "b.csv"),
                         "--device", "cpu", "--quiet"]) == 0
    with (tmp_path / "b.csv").open(encoding="utf-8-sig", newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["status"] == "ok" and not row["error"]


def test_evaluate_lists_the_files_it_left_out(tmp_path):
    from helpers_models import make_tiny_classifier

    from station.synth import MATERIALS

    model_dir = tmp_path / "model"
    make_tiny_classifier(model_dir)
    data = tmp_path / "data"
    for index, material in enumerate(MATERIALS):
        (data / material).mkdir(parents=True)
        sample = render_package(index, material=material, size=(96, 128))
        assert cv2.imwrite(str(data / material / "good.png"), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR))
    hostile = data / MATERIALS[0]
    (hostile / "bomb.png").write_bytes(png_header(40000, 40000))
    (hostile / "loop.png").symlink_to("loop.png")
    (hostile / "dangling.png").symlink_to("gone.png")
    os.mkfifo(hostile / "pipe.png")
    (hostile / "text.png").write_text("not an image\n")
    out = tmp_path / "metrics.json"
    code = station_main(["evaluate", "--model", str(model_dir), "--data", str(data), "--format", "folder",
                         "--device", "cpu", "--quiet", "--json", str(out), "--out", str(tmp_path / "reports")])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["n_images"] == len(MATERIALS)
    left_out = "\n".join(report["left_out"])
    for name, reason in (("bomb.png", "too large to inspect"), ("loop.png", "loops"), ("dangling.png", "missing file"),
                         ("pipe.png", "not a regular file"), ("text.png", "not an image")):
        assert f"{name}: " in left_out and reason in left_out, name


def test_the_folder_source_reports_each_bad_file_and_goes_on(hostile_folder, monkeypatch):
    from station.capture import folder as folder_module

    real_read_image = folder_module.read_image

    def raising_read_image(path, **kwargs):  # whatever a decoder raises, such as OpenCV's raw cv2.error
        if Path(path).name == "good-2.jpg":
            raise cv2.error("OpenCV(4.x) imdecode: unexpected failure")
        return real_read_image(path, **kwargs)

    monkeypatch.setattr(folder_module, "read_image", raising_read_image)
    frames, failures = [], {}
    with ImageFolderSource(hostile_folder) as source:
        while True:
            try:
                frame = source.read()
            except FrameReadError as exc:
                failures[exc.path.name] = str(exc)
                continue
            if frame is None:
                break
            frames.append(Path(frame.source).name)
    images = sorted(name for name in EXPECTED if name != "notes.txt")
    assert sorted(frames + list(failures)) == images
    assert "good-1.png" in frames and "unreadable.png" in frames  # only the batch runner's open() refuses it
    assert "good-2.jpg" in failures["good-2.jpg"] and "unexpected failure" in failures["good-2.jpg"]
    assert "loops" in failures["loop.png"] and "too large" in failures["bomb.png"]


def test_large_images_are_decoded_reduced_and_upright(monkeypatch):
    monkeypatch.setattr(images_module, "FULL_RESOLUTION_PIXELS", 64 * 64)
    image = np.zeros((200, 320, 3), np.uint8)
    image[:100, :160] = (255, 0, 0)  # red top-left quadrant
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    decoded = decode_image(jpeg.tobytes())
    assert decoded.shape == (50, 80, 3)  # 64000 pixels: 1/4 is the first reduction at or under 4096
    assert decoded[10, 10, 0] > 200 and decoded[40, 70, 0] < 50
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert decode_image(png.tobytes()).shape == (50, 80, 3)  # the same reduction for every format


def test_read_image_names_what_the_path_is(tmp_path):
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "folder.png").mkdir()
    for name, reason in (("loop.png", "loops"), ("folder.png", "a folder"), ("missing.png", "no such file")):
        with pytest.raises(ImageReadError, match=reason):
            read_image(tmp_path / name)
    (tmp_path / "bomb.png").write_bytes(png_header(40000, 40000))
    with pytest.raises(ImageReadError, match="too large to inspect"):
        read_image(tmp_path / "bomb.png", max_pixels=None)  # beyond Pillow's own limit too
