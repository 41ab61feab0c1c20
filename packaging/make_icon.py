"""Draw resources/icons/station.ico (a chip under a magnifier), the executables' and installer's icon.

    python packaging/make_icon.py        (Pillow; the file is committed, so builds do not need this)
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZES = (16, 24, 32, 48, 64, 128, 256)
OUT = Path(__file__).resolve().parents[1] / "resources" / "icons" / "station.ico"


def draw(size: int = 256) -> Image.Image:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(image)
    s = size / 256
    d.rounded_rectangle((8 * s, 8 * s, 248 * s, 248 * s), radius=44 * s, fill=(22, 58, 96, 255))
    for i in range(4):  # pins on four sides of the package
        offset = (78 + i * 30) * s
        for box in ((offset, 46 * s, offset + 14 * s, 70 * s), (offset, 186 * s, offset + 14 * s, 210 * s),
                    (46 * s, offset, 70 * s, offset + 14 * s), (186 * s, offset, 210 * s, offset + 14 * s)):
            d.rectangle(box, fill=(200, 206, 214, 255))
    d.rounded_rectangle((66 * s, 66 * s, 190 * s, 190 * s), radius=12 * s, fill=(40, 44, 52, 255))
    d.ellipse((96 * s, 96 * s, 184 * s, 184 * s), outline=(255, 196, 0, 255), width=max(1, round(14 * s)))
    d.line((172 * s, 172 * s, 222 * s, 222 * s), fill=(255, 196, 0, 255), width=max(2, round(22 * s)))
    return image


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    draw().save(OUT, sizes=[(n, n) for n in SIZES])
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
