"""Render an HTML report to PDF with Qt's own text engine and PDF writer.

Qt-free callers (``station audit export --format pdf``, the batch review) build plain HTML (in
the style of ``station.reports.style``) and hand it here; this module is the only place outside
``station.ui`` that touches Qt. QTextDocument understands a
subset of HTML 4 and CSS (tables, ``<img>``, headings, inline styles; no flex or grid). Images
may be given by file path (``<img src="/abs/image.png">``) or as ``data:image/png;base64,...``.

Works headless: without a running application a QGuiApplication is created on the
``offscreen`` platform, so the CLI needs no display. Safe to call from a worker thread once an
application exists (QTextDocument and QPdfWriter are reentrant).
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QMarginsF, QUrl
from PySide6.QtGui import QGuiApplication, QPageLayout, QPageSize, QPdfWriter, QTextDocument

from station import __version__
from station.storage import is_writable_folder, replacing

_RESOLUTION_DPI = 300
_app_lock = threading.Lock()
_headless_app: QGuiApplication | None = None  # kept alive for the life of the process


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
    document.setMetaInformation(QTextDocument.MetaInformation.DocumentTitle, title)
    if base_dir is not None:
        document.setBaseUrl(QUrl.fromLocalFile(str(Path(base_dir).resolve()) + "/"))
    document.setHtml(html)
    # Left unpaginated (no setPageSize) on purpose: print_ then scales the layout to the
    # writer's resolution, paginates and adds the page numbers.
    document.print_(writer)
    # The PDF is complete and its file closed when the writer is destroyed, on return.
