"""PDF reports never cut a table row at a page break: read back page by page with pdftotext,
every row's first and last line are on the same page, and the header repeats above the rest."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from station.reports.pdf import write_pdf  # noqa: E402


def _page_texts(path) -> list[str]:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))
    return [
        subprocess.run(["pdftotext", "-layout", "-f", str(page), "-l", str(page), str(path), "-"],
                       capture_output=True, text=True, check=True).stdout
        for page in range(1, pages + 1)
    ]


def _report(rows: int, seed: int, thumbnails: list) -> str:
    rng = random.Random(seed)
    body = []
    for i in range(rows):
        lines = [f"R{i:03d}-note{k}" for k in range(rng.randint(0, 7))] + [f"R{i:03d}-end"]
        image = f"<br><img src='{thumbnails[i % len(thumbnails)]}'>" if i % 3 == 0 else ""
        body.append(f"<tr><td>R{i:03d}-start{image}</td><td>{'<br>'.join(lines)}</td><td>ok</td></tr>")
    return ("<h1>Report</h1><p>Rows of varying height.</p><table border='1' cellspacing='0' width='100%'>"
            "<thead><tr><th>Chip</th><th>Comment</th><th>Verdict</th></tr></thead>" + "".join(body) + "</table>"
            "<h2>After</h2><table border='1'><tr><td>tail-start<br>tail-end</td></tr></table>")


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (pdftotext)")
@pytest.mark.parametrize("landscape", [False, True])
def test_no_row_is_cut_at_a_page_break(qapp, tmp_path, landscape):
    import cv2
    import numpy as np

    thumbnails = []
    for height in (40, 90, 160):  # a thumbnail stranded on the next page was the batch PDF's bug
        thumbnails.append(tmp_path / f"thumb-{height}.png")
        cv2.imwrite(str(thumbnails[-1]), np.full((height, 60, 3), 180, np.uint8))
    pages = _page_texts(write_pdf(_report(150, 7, thumbnails), tmp_path / "report.pdf", landscape=landscape))
    assert len(pages) > 3
    seen = []
    for number, text in enumerate(pages, start=1):
        starts = re.findall(r"R(\d{3})-start", text)
        parts = set(re.findall(r"R(\d{3})-(?:note\d|end)", text))
        assert set(starts) == set(re.findall(r"R(\d{3})-end", text)), f"page {number} cuts a row"
        assert parts <= set(starts), f"page {number} holds the rest of a row begun on the page before"
        if starts:
            assert "Chip" in text and "Verdict" in text  # the header above the rows on every page
        assert text.rstrip().endswith(str(number))  # numbered at the foot
        seen += starts
    assert seen == [f"{i:03d}" for i in range(150)]  # every row once, in order
    assert "tail-start" in pages[-1] and "tail-end" in pages[-1]


def test_a_row_taller_than_a_page_is_left_to_break(qapp, tmp_path):
    tall = "<br>".join(f"line {i}" for i in range(200))
    pages = _page_texts(write_pdf(f"<table border='1'><tr><td>tall-start<br>{tall}<br>tall-end</td></tr></table>",
                                  tmp_path / "tall.pdf"))
    assert "tall-start" in pages[0] and "tall-end" in pages[-1] and len(pages) >= 2
