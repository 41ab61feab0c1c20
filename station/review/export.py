"""Batch review exports: a CSV row per file, a JSON summary, and the HTML of the PDF summary.

The CSV streams from the store (any folder size); every file the review lists has a row,
errors included with their reason. The PDF summary (HTML laid out by
``station.reports.pdf.write_pdf``) counts files per material and review status and lists the
flagged items (uncertain, with defects, or overridden) with their thumbnails, then the errors.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from station import __version__
from station.labels import plural
from station.reports.style import PAGE_CSS, grid
from station.review.runner import RunSummary
from station.review.store import BatchStore, ItemRecord, ItemRow
from station.review.thumbnails import ThumbnailCache
from station.storage import replacing

CSV_COLUMNS_BEFORE_PROBABILITIES = (
    "file", "status", "error", "sha256", "width", "height", "material", "confidence", "uncertain", "decap_method",
    "image_problems",
)
CSV_COLUMNS_AFTER_PROBABILITIES = (
    "n_defects", "top_defect", "top_defect_score", "defects", "review", "reviewed_material", "review_reason",
    "reviewed_by", "reviewed_at", "audit_entry_id",
)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_SIGNED_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")
_PDF_FLAGGED_LIMIT = 300
_PDF_ERROR_LIMIT = 500


@dataclass(frozen=True)
class BatchSummary:
    folder: str
    recipe: str
    n_images: int  # files listed (one CSV row each), errors included
    n_errors: int
    n_inspected: int  # files with a result
    n_pending: int  # not inspected yet (a cancelled run)
    n_uncertain: int
    n_with_defects: int
    n_reviewed: int
    images_per_s: float  # this run's throughput (0 when everything was already inspected)
    n_inspected_this_run: int = 0
    seconds_this_run: float = 0.0
    device: str = ""
    cancelled: bool = False
    by_material: dict[str, int] = field(default_factory=dict)
    by_review: dict[str, int] = field(default_factory=dict)
    by_material_and_review: dict[str, dict[str, int]] = field(default_factory=dict)
    generated: str = ""
    app_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _review_key(row: ItemRow) -> str:
    return row.review or ("error" if row.is_error else "not reviewed" if row.is_done else "pending")


def material_of_record(row: ItemRow) -> str | None:
    return row.reviewed_material if row.review == "overridden" else row.material


def summarize(store: BatchStore, run: RunSummary | None = None) -> BatchSummary:
    rows = store.rows()
    done = [r for r in rows if r.is_done]
    by_material_and_review: dict[str, Counter] = {}
    for row in done:
        material = material_of_record(row) or "(no classifier)"
        by_material_and_review.setdefault(material, Counter())[_review_key(row)] += 1
    return BatchSummary(
        folder=store.meta("folder") or "",
        recipe=store.meta("recipe") or "",
        n_images=len(rows),
        n_errors=sum(1 for r in rows if r.is_error),
        n_inspected=len(done),
        n_pending=sum(1 for r in rows if not r.is_done and not r.is_error),
        n_uncertain=sum(1 for r in done if r.uncertain),
        n_with_defects=sum(1 for r in done if r.has_defects),
        n_reviewed=sum(1 for r in done if r.is_reviewed),
        images_per_s=round(run.images_per_s, 3) if run else 0.0,
        n_inspected_this_run=run.inspected if run else 0,
        seconds_this_run=round(run.seconds, 3) if run else 0.0,
        device=run.device if run else "",
        cancelled=run.cancelled if run else False,
        by_material=dict(sorted(Counter(material_of_record(r) or "(no classifier)" for r in done).items())),
        by_review=dict(sorted(Counter(_review_key(r) for r in rows).items())),
        by_material_and_review={m: dict(sorted(c.items())) for m, c in sorted(by_material_and_review.items())},
        generated=datetime.now().astimezone().isoformat(timespec="seconds"),
    )


def export_name(folder: PurePath, kind: str) -> str:
    """The file name offered for a review of ``folder``: ``lot-7-review.csv``; a drive root has no
    name, so ``E:\\`` gives ``E-drive-review.csv`` and ``\\\\lab\\scans`` ``lab-scans-review.csv``."""
    label = folder.name or "-".join(part for part in re.split(r"[\\/:]+", folder.anchor) if part)
    if not folder.name:
        label = f"{label}-drive" if folder.drive.endswith(":") else label or "root"
    return f"{label}-review.{kind}"


def export_path(folder: PurePath, kind: str) -> PurePath:
    """Where the export of a review of ``folder`` is offered: beside it, or inside a drive root."""
    name = export_name(folder, kind)
    return folder / name if not folder.name else folder.with_name(name)


def write_json(summary: BatchSummary, path: Path) -> Path:
    path = Path(path)
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# -- CSV ---------------------------------------------------------------------------------------


def _cell(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) and not _SIGNED_NUMBER.fullmatch(value):
        return "'" + value  # a file named "=HYPERLINK(...).png" must not run in a spreadsheet
    return value


def material_classes(store: BatchStore) -> list[str]:
    for record in store.iter_records():
        if record.result is not None and record.result.material is not None:
            return list(record.result.material.classes)
    return []


def _call_cells(result) -> tuple[Any, ...]:
    """material, confidence, uncertain, decap_method: a frame with no known part names no material."""
    call = result.material if result is not None else None
    unfamiliar = result is not None and result.unfamiliar
    if call is None:
        return (None, None, True if unfamiliar else None, None)
    if unfamiliar:
        return (None, call.confidence, True, None)
    return (call.material, call.confidence, call.uncertain, call.decap_method)


def _csv_row(record: ItemRecord, classes: list[str]) -> list[Any]:
    row = record.row
    result = record.result
    call = result.material if result is not None else None
    status = "ok" if row.is_done else "error" if row.is_error else "pending"
    probabilities = dict(zip(call.classes, call.probabilities)) if call is not None else {}
    defects = result.to_dict()["defects"] if result is not None else None
    values = [
        row.relative_path, status, row.error, row.sha256, record.width, record.height,
        *_call_cells(result),
        "; ".join(result.problems if result is not None else ()) or None,
        *(probabilities.get(c) for c in classes),
        row.n_defects, record.top_defect_label, row.top_defect_score,
        json.dumps(defects, separators=(",", ":")) if defects is not None else None,
        row.review, row.reviewed_material, record.review_reason, record.reviewed_by, record.reviewed_at,
        row.audit_entry_id,
    ]
    return [_cell(v) for v in values]


def write_csv(store: BatchStore, path: Path) -> Path:
    """One row per listed file, in folder order; ``p_<class>`` columns for each material."""
    path = Path(path)
    classes = material_classes(store)
    with replacing(path) as tmp, tmp.open("w", newline="", encoding="utf-8-sig") as stream:
        writer = csv.writer(stream)
        writer.writerow([*CSV_COLUMNS_BEFORE_PROBABILITIES, *(f"p_{c}" for c in classes), *CSV_COLUMNS_AFTER_PROBABILITIES])
        for record in store.iter_records():
            writer.writerow(_csv_row(record, classes))
    return path


# -- PDF summary (HTML for station.reports.pdf) ---------------------------------------------------

_GRID = grid(cellpadding=3)


def is_flagged(row: ItemRow) -> bool:
    return row.is_done and (bool(row.uncertain) or row.has_defects or row.review == "overridden")


def summary_html(store: BatchStore, summary: BatchSummary, thumbnails: ThumbnailCache | None = None) -> str:
    """The PDF summary: counts per material and review status, flagged items with thumbnails, errors."""
    thumbnails = thumbnails or ThumbnailCache()
    esc = html.escape
    statuses = sorted({s for counts in summary.by_material_and_review.values() for s in counts})
    count_rows = "".join(
        f"<tr><td>{esc(material)}</td>"
        + "".join(f"<td align='right'>{counts.get(s, 0)}</td>" for s in statuses)
        + f"<td align='right'><b>{sum(counts.values())}</b></td></tr>"
        for material, counts in summary.by_material_and_review.items()
    ) or f"<tr><td colspan='{len(statuses) + 2}'>no inspected images</td></tr>"
    counts_table = (
        f"<table {_GRID}><tr><th>Material</th>{''.join(f'<th>{esc(s)}</th>' for s in statuses)}<th>total</th></tr>"
        f"{count_rows}</table>"
    )
    meta_rows = [
        ("Folder", esc(summary.folder)),
        ("Recipe", esc(summary.recipe)),
        ("Files", f"{summary.n_images} ({summary.n_inspected} inspected, {plural(summary.n_errors, 'error')}, "
                  f"{summary.n_pending} not inspected)"),
        ("Flags", f"{summary.n_uncertain} uncertain, {summary.n_with_defects} with defects"),
        ("Reviewed", f"{summary.n_reviewed} of {summary.n_inspected}"),
        ("Generated", f"{esc(summary.generated)} by station {esc(summary.app_version)}"),
    ]
    rows = store.rows()
    flagged = [r for r in rows if is_flagged(r)]
    flagged_rows = []
    for row in flagged[:_PDF_FLAGGED_LIMIT]:
        thumb = thumbnails.path(row.sha256) if row.sha256 else None
        image = f"<img src='{esc(str(thumb))}' width='64'>" if thumb is not None and thumb.is_file() else "-"
        flags = []
        if row.uncertain:
            flags.append("<span class='bad'>UNCERTAIN</span>" if row.material is not None
                         else "<span class='bad'>IMAGE CHECK FAILED</span>")
        if row.has_defects:
            flags.append(f"{row.n_defects} defect(s), top {row.top_defect_score:.2f}")
        material = esc(row.material or "-")
        if row.confidence is not None:
            material += f" <span class='small'>{row.confidence:.2f}</span>"
        flagged_rows.append(
            f"<tr><td>{image}</td><td>{esc(row.relative_path)}</td><td>{material}</td>"
            f"<td>{'<br>'.join(flags) or '-'}</td><td>{esc(row.status_text)}</td></tr>"
        )
    more = len(flagged) - _PDF_FLAGGED_LIMIT
    flagged_table = (
        f"<table {_GRID} width='100%'><thead><tr><th>Image</th><th>File</th><th>Material</th><th>Flags</th>"
        f"<th>Review</th></tr></thead>{''.join(flagged_rows) or '<tr><td colspan=5>none</td></tr>'}</table>"
        + (f"<p>… and {more} more (see the CSV export)</p>" if more > 0 else "")
    )
    errors = [r for r in rows if r.is_error]
    error_rows = "".join(
        f"<tr><td>{esc(r.relative_path)}</td><td>{esc(r.error or '')}</td></tr>" for r in errors[:_PDF_ERROR_LIMIT]
    )
    errors_table = (
        f"<table {_GRID} width='100%'><thead><tr><th>File</th><th>Reason</th></tr></thead>"
        f"{error_rows or '<tr><td colspan=2>none</td></tr>'}</table>"
        + (f"<p>… and {len(errors) - _PDF_ERROR_LIMIT} more</p>" if len(errors) > _PDF_ERROR_LIMIT else "")
    )
    return "\n".join([
        f"<html><head><style>{PAGE_CSS}</style></head><body>",
        "<h1>Batch review summary</h1>",
        "<table cellspacing='0' cellpadding='1'>",
        *(f"<tr><td><b>{label}</b>&nbsp;&nbsp;</td><td>{value}</td></tr>" for label, value in meta_rows),
        "</table>",
        "<h2>Per material and review status</h2>", counts_table,
        f"<h2>Flagged items ({len(flagged)})</h2>", flagged_table,
        f"<h2>Errors ({len(errors)})</h2>", errors_table,
        "</body></html>",
    ])


def write_pdf_summary(store: BatchStore, summary: BatchSummary, path: Path, thumbnails: ThumbnailCache | None = None) -> Path:
    from station.reports.pdf import write_pdf  # Qt only for this format

    return write_pdf(summary_html(store, summary, thumbnails), path, title=f"Batch review: {summary.folder}")
