"""Render an HTML report to PDF with Qt's own text engine and PDF writer.

Qt-free callers (``station audit export --format pdf``, the batch review) build plain HTML (in
the style of ``station.reports.style``) and hand it here; this module is the only place outside
``station.ui`` that touches Qt. QTextDocument understands a
subset of HTML 4 and CSS (tables, ``<img>``, headings, inline styles; no flex or grid). Images
may be given by file path (``<img src="/abs/image.png">``) or as ``data:image/png;base64,...``.

Works headless: without a running application a QGuiApplication is created on the
``offscreen`` platform, so the CLI needs no display. Safe to call from a worker thread once an
application exists (QTextDocument and QPdfWriter are reentrant).

Text is set in the bundled DejaVu Sans (``resources/fonts``, Latin, Greek and Cyrillic: µ, ü, Ø),
falling back to a Chinese, Japanese or Korean font of Windows (``%WINDIR%\\Fonts``) or, elsewhere,
of the system: the offscreen platform on Windows finds no system font by itself, and a PDF laid
out without a font has no text.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QMarginsF, QPointF, QRectF, QSizeF, QUrl
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFont,
    QFontDatabase,
    QFontMetrics,
    QGuiApplication,
    QPageLayout,
    QPageSize,
    QPainter,
    QPalette,
    QPdfWriter,
    QTextDocument,
    QTextTable,
)

from station import __version__, paths
from station.storage import is_writable_folder, replacing

_RESOLUTION_DPI = 300
_app_lock = threading.Lock()
_headless_app: QGuiApplication | None = None  # kept alive for the life of the process
_report_families: list[str] | None = None  # the fonts' families, once registered

# Windows' own CJK fonts (Microsoft YaHei, SimSun, Meiryo, Malgun Gothic): too large to bundle
_WINDOWS_FALLBACK_FONTS = ("msyh.ttc", "simsun.ttc", "meiryo.ttc", "malgun.ttf")
# where no Windows font was registered: system fonts the platform's own database may know
_SYSTEM_FALLBACK_FAMILIES = ("Noto Sans CJK SC", "Droid Sans Fallback", "WenQuanYi Micro Hei")


def _ensure_gui_application() -> None:
    global _headless_app
    with _app_lock:
        app = QCoreApplication.instance()
        if app is None:
            # A platform argument instead of QT_QPA_PLATFORM keeps the environment untouched.
            _headless_app = QGuiApplication(["station-report", "-platform", "offscreen"])
        elif not isinstance(app, QGuiApplication):
            raise RuntimeError(
                "write_pdf needs a QGuiApplication (fonts and layout), but this process runs a plain "
                "QCoreApplication; create a QGuiApplication or QApplication instead"
            )


def _font_files() -> list[Path]:
    bundled = sorted((paths.resources_dir() / "fonts").glob("*.ttf"))
    windows = os.environ.get("WINDIR")
    system = [Path(windows) / "Fonts" / name for name in _WINDOWS_FALLBACK_FONTS] if windows else []
    return bundled + [file for file in system if file.is_file()]


def report_families() -> list[str]:
    """The families a report is set in, first choice first (registers the fonts once)."""
    global _report_families
    with _app_lock:
        if _report_families is None:
            families: list[str] = []
            for file in _font_files():
                font_id = QFontDatabase.addApplicationFont(str(file))
                families += [f for f in QFontDatabase.applicationFontFamilies(font_id) if f not in families]
            _report_families = families + [f for f in _SYSTEM_FALLBACK_FAMILIES if f not in families]
        return _report_families


def write_pdf(
    html: str,
    path: str | Path,
    *,
    title: str = "",
    landscape: bool = False,
    page_size: QPageSize.PageSizeId = QPageSize.PageSizeId.A4,
    base_dir: str | Path | None = None,
) -> Path:
    """Lay ``html`` out on pages and write it to ``path`` (parent folders created); returns the path.

    ``title`` becomes the PDF's document title; ``base_dir`` resolves relative image paths.
    Pages have a 2 cm margin and their number at the foot, as QTextDocument.print_ makes them; a
    ``<thead>`` row repeats on every page, and a table row that would cross a page break starts
    on the next page instead (``keep_rows_whole``). Raises ``OutputFileError`` (an
    ``OSError``) naming the path when the file cannot be written; a report that could not replace
    a file held open elsewhere is kept under another name (``station.storage.replacing``).
    """
    path = Path(path)
    _ensure_gui_application()
    # Written beside the target and renamed: a failed or interrupted render never leaves a
    # truncated report under the real name, and a missing file reveals a silent writer failure.
    with replacing(path) as tmp:
        _render(html, tmp, title=title, landscape=landscape, page_size=page_size, base_dir=base_dir)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            if not is_writable_folder(path.parent):
                raise PermissionError(errno.EACCES, "no permission to write there", str(tmp))
            raise OSError(f"could not write the PDF report {path} (Qt's PDF writer produced no file)")
    return path


def _render(
    html: str,
    path: Path,
    *,
    title: str,
    landscape: bool,
    page_size: QPageSize.PageSizeId,
    base_dir: str | Path | None,
) -> None:
    writer = QPdfWriter(str(path))
    writer.setTitle(title)
    writer.setCreator(f"station {__version__}")
    writer.setResolution(_RESOLUTION_DPI)
    orientation = QPageLayout.Orientation.Landscape if landscape else QPageLayout.Orientation.Portrait
    layout = QPageLayout(
        QPageSize(page_size),
        orientation,
        QMarginsF(0, 0, 0, 0),  # the 2 cm margin is the document's, as print_ sets it
        QPageLayout.Unit.Millimeter,
    )
    if not writer.setPageLayout(layout):
        raise ValueError(f"page layout {page_size!r} (landscape={landscape}) rejected by the PDF writer")

    def paginate(text: str):
        return _paginated(_document(text, title, base_dir), writer)

    # drawn page by page here, not by print_: print_ lays out a copy of its own, where rows moved
    # by keep_rows_whole can land elsewhere; what was measured is what is printed
    _print_pages(*paginate(keep_rows_whole(html, paginate)), writer)
    # The PDF is complete and its file closed when the writer is destroyed, on return.


_MARGIN_AT_96_DPI = int((2 / 2.54) * 96)  # print_'s 2 cm


def _print_pages(document: QTextDocument, page_height: float, body_height: float, writer: QPdfWriter) -> None:
    """Draw ``document`` (laid out by ``_paginated``) page by page, numbered at the foot as print_ does."""
    margin = _MARGIN_AT_96_DPI * writer.logicalDpiY() / 96
    width = float(writer.width())
    painter = QPainter(writer)
    try:
        painter.setFont(document.defaultFont())
        ascent = QFontMetrics(document.defaultFont(), writer).ascent()
        for index in range(document.pageCount()):
            if index:
                writer.newPage()
            view = QRectF(0, index * page_height, width, page_height)
            painter.save()
            painter.translate(0, -view.top())
            painter.setClipRect(view)
            context = QAbstractTextDocumentLayout.PaintContext()
            context.clip = view
            context.palette.setColor(QPalette.ColorRole.Text, QColor("black"))
            document.documentLayout().draw(painter, context)
            painter.setClipping(False)
            number = str(index + 1)
            painter.drawText(QPointF(width - margin - painter.fontMetrics().horizontalAdvance(number),
                                     view.top() + page_height - margin + ascent + 5 * writer.logicalDpiY() / 72),
                             number)
            painter.restore()
    finally:
        painter.end()


def _document(html: str, title: str, base_dir: str | Path | None) -> QTextDocument:
    document = QTextDocument()
    font = QFont()
    font.setFamilies(report_families())
    document.setDefaultFont(font)
    document.setMetaInformation(QTextDocument.MetaInformation.DocumentTitle, title)
    if base_dir is not None:
        document.setBaseUrl(QUrl.fromLocalFile(str(Path(base_dir).resolve()) + "/"))
    document.setHtml(html)
    return document


def _paginated(document: QTextDocument, writer: QPdfWriter) -> tuple[QTextDocument, float, float]:
    """``document`` laid out in pages as ``print_`` would (the writer's metrics, 2 cm margins, the
    writer's page); with the page's height and the height inside its margins, in device pixels."""
    document.documentLayout().setPaintDevice(writer)
    frame_format = document.rootFrame().frameFormat()
    frame_format.setMargin(_MARGIN_AT_96_DPI)  # scaled to the writer's resolution by the layout
    document.rootFrame().setFrameFormat(frame_format)
    document.setPageSize(QSizeF(writer.width(), writer.height()))
    page_height = float(writer.height())
    body_height = page_height - 2 * _MARGIN_AT_96_DPI * writer.logicalDpiY() / 96
    return document, page_height, body_height


_TABLE_TAG = re.compile(r"<(/?)(table|tbody|thead|tr)\b[^>]*>", re.IGNORECASE)
_MAX_ROWS_MOVED = 500  # a bound on the layouts one report costs


@dataclass
class _HtmlTable:
    start_tag: str
    start: int  # offset of the start tag
    header: str  # its <thead>…</thead>, repeated above the rows moved to the next page
    rows: list[tuple[int, bool]] = field(default_factory=list)  # each top-level <tr>'s offset, inside a <tbody>


def _html_tables(html: str) -> list[_HtmlTable]:
    """The top-level tables of ``html`` in order, as Qt's root frame holds them."""
    tables: list[_HtmlTable] = []
    depth, in_body, header_start = 0, False, -1
    for tag in _TABLE_TAG.finditer(html):
        closing, name = tag.group(1) == "/", tag.group(2).lower()
        if name == "table":
            depth += -1 if closing else 1
            if depth == 1 and not closing:
                tables.append(_HtmlTable(tag.group(0), tag.start(), ""))
        elif depth == 1 and name == "tbody":
            in_body = not closing
        elif depth == 1 and name == "thead":
            if closing and header_start >= 0:
                tables[-1].header = html[header_start:tag.end()]
            header_start = -1 if closing else tag.start()
        elif depth == 1 and name == "tr" and not closing:
            tables[-1].rows.append((tag.start(), in_body))
    return tables


def _first_split_row(document: QTextDocument, page_height: float, body_height: float) -> tuple[int, int, int] | None:
    """(table index, row, its first row below the header) of the first table row laid across a page boundary that would fit on one page."""
    layout = document.documentLayout()
    tables = [frame for frame in document.rootFrame().childFrames() if isinstance(frame, QTextTable)]
    for index, table in enumerate(tables):
        first_body_row = table.format().headerRowCount()
        for row in range(first_body_row, table.rows()):
            cells = [table.cellAt(row, column) for column in range(table.columns())]
            top = min(layout.blockBoundingRect(cell.firstCursorPosition().block()).top() for cell in cells)
            bottom = max(layout.blockBoundingRect(cell.lastCursorPosition().block()).bottom() for cell in cells)
            if top // page_height != (bottom - 1) // page_height and bottom - top < body_height:
                return index, row, first_body_row
    return None


def _with_page_break(start_tag: str) -> str:
    style = re.search(r"\bstyle\s*=\s*(['\"])", start_tag, re.IGNORECASE)
    if style is not None:
        return start_tag[:style.end()] + "page-break-before: always; " + start_tag[style.end():]
    return start_tag[:-1] + " style='page-break-before: always'>"


def keep_rows_whole(html: str, paginate) -> str:
    """``html`` with each table that would have a row cut by a page break split before that row,
    the rest starting on the next page under the table's header: Qt's layout breaks a table row
    between lines (a thumbnail stranded on the next page).

    ``paginate(html)`` returns (document laid out in pages, page height, height inside the
    margins); a table whose rows the document does not show as in the HTML is left as it is.
    """
    for _ in range(_MAX_ROWS_MOVED):
        split = _first_split_row(*paginate(html))
        if split is None:
            return html
        tables = _html_tables(html)
        index, row, first_body_row = split
        if index >= len(tables) or row >= len(tables[index].rows):
            return html
        table = tables[index]
        offset, in_body = table.rows[row]
        if row == first_body_row:  # the whole table goes to the next page
            if "page-break-before" in table.start_tag.lower():
                return html
            tag = _with_page_break(table.start_tag)
            html = html[:table.start] + tag + html[table.start + len(table.start_tag):]
            continue
        restart = _with_page_break(table.start_tag) + table.header + ("<tbody>" if in_body else "")
        html = html[:offset] + ("</tbody>" if in_body else "") + "</table>" + restart + html[offset:]
    return html
