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
import threading
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QMarginsF, QUrl
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QPageLayout, QPageSize, QPdfWriter, QTextDocument

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
    QTextDocument.print_ breaks the document into pages with a 2 cm margin and numbers the pages
    at the foot; a ``<thead>`` row repeats on every page. Raises ``OutputFileError`` (an
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
        QMarginsF(0, 0, 0, 0),  # print_ adds its own 2 cm margin and the page numbers
        QPageLayout.Unit.Millimeter,
    )
    if not writer.setPageLayout(layout):
        raise ValueError(f"page layout {page_size!r} (landscape={landscape}) rejected by the PDF writer")

    document = QTextDocument()
    font = QFont()
    font.setFamilies(report_families())
    document.setDefaultFont(font)
    document.setMetaInformation(QTextDocument.MetaInformation.DocumentTitle, title)
    if base_dir is not None:
        document.setBaseUrl(QUrl.fromLocalFile(str(Path(base_dir).resolve()) + "/"))
    document.setHtml(html)
    # Left unpaginated (no setPageSize) on purpose: print_ then scales the layout to the
    # writer's resolution, paginates and adds the page numbers.
    document.print_(writer)
    # The PDF is complete and its file closed when the writer is destroyed, on return.
