"""The look of every printed report, as the HTML subset QTextDocument lays out (no CSS layout)."""

from __future__ import annotations

PAGE_CSS = """
body { font-size: 9pt; }
h1 { font-size: 16pt; margin-bottom: 2px; }
h2 { font-size: 12pt; margin-top: 14px; margin-bottom: 4px; }
th { background-color: #e4e4e4; text-align: left; }
.entries { font-size: 8pt; }
.ok { color: #11661f; font-weight: bold; }
.bad { color: #b00020; font-weight: bold; }
.small { font-size: 7pt; color: #555555; }
"""


def grid(cellpadding: int = 3) -> str:
    """The attributes of a ruled table (QTextDocument ignores CSS borders on cells)."""
    return (
        f"border='1' cellspacing='0' cellpadding='{cellpadding}' "
        "style='border-collapse: collapse; border-color: #999999'"
    )

