"""Audit exports for an inspector: CSV (spreadsheets), JSON (machine-checkable), PDF (to read).

Every export carries the chain verification of the *whole* log, whatever period is exported,
and the head hash. The JSON export holds each entry's ``prev_hash`` and ``hash``, so the chain of
an unfiltered export can be recomputed from it alone (see ``station.audit.chain``).

CSV: one row per entry, a column per ``AuditEntry`` field; dicts and lists are canonical JSON
text; UTF-8 with a byte-order mark so that spreadsheet programs read µ and accents. A text cell
starting with ``= + - @`` (other than a signed number or UTC offset) gets a leading ``'`` so a spreadsheet cannot run it as a formula
(chip ids and reasons come from scanners and people); the JSON export keeps the exact text.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

from station import __version__
from station.audit.archive import image_status
from station.audit.chain import VerifyResult, canonical_json, verify
from station.audit.entry import AuditEntry
from station.audit.keys import fingerprint
from station.audit.log import AuditLog, When
from station.labels import action_title, display_name, recorded_time_text, scale_text, signature_text, verdict_title
from station.reports.style import PAGE_CSS, grid
from station.storage import output_file, replacing

FORMATS = ("csv", "json", "pdf")
CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AuditEntry))
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_SIGNED_NUMBER = re.compile(r"[+-][0-9.:]+")  # "-0.5", "+02:00": data, not formulas
_THUMBNAIL_SIDE_PX = 96
# Qt lays a table out at a few ms per row: 2000 rows is ~60 pages and some seconds. Longer
# periods belong in CSV/JSON (the counts and the verification always cover every entry).
DEFAULT_PDF_MAX_ROWS = 2000
_GRID = grid(cellpadding=2)


@dataclass(frozen=True)
class Summary:
    n_entries: int
    first_time_utc: str | None
    last_time_utc: str | None
    stations: tuple[str, ...]
    operators: tuple[str, ...]
    by_action: dict[str, int]
    by_material: dict[str, int]  # "(none)" for entries without a material
    by_verdict: dict[str, int]  # "(none)" for entries without a verdict


@dataclass(frozen=True)
class ExportResult:
    path: Path
    n_entries: int
    verification: VerifyResult


def summarize(entries: Sequence[AuditEntry]) -> Summary:
    def counts(values) -> dict[str, int]:
        return dict(sorted(Counter(v if v else "(none)" for v in values).items()))

    return Summary(
        n_entries=len(entries),
        first_time_utc=entries[0].time_utc if entries else None,
        last_time_utc=entries[-1].time_utc if entries else None,
        stations=tuple(sorted({e.station_id for e in entries})),
        operators=tuple(sorted({e.operator_id for e in entries})),
        by_action=counts(e.action for e in entries),
        by_material=counts(e.material for e in entries),
        by_verdict=counts(e.verdict for e in entries),
    )


def export(
    fmt: str,
    out: Path,
    *,
    db_path: Path | str | None = None,
    from_: When | None = None,
    to: When | None = None,
    pdf_max_rows: int | None = DEFAULT_PDF_MAX_ROWS,
    expect_head: str | None = None,
) -> ExportResult:
    """Export the entries between ``from_`` and ``to`` (inclusive; see ``AuditLog.query``).

    ``db_path`` is a file or a ``postgresql://`` URL (default: the station's log). The PDF's
    entry table stops after ``pdf_max_rows`` rows (None: no limit) and says so.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {FORMATS}")
    with AuditLog(db_path, readonly=True) as log:
        entries = log.query(from_=from_, to=to)
        verification = verify(log.location, expect_head=expect_head)
        source = log.describe_location()
        data_dir = log.data_dir
    period = (None if from_ is None else str(from_), None if to is None else str(to))
    out = output_file(out, f"audit-{datetime.now():%Y-%m-%d}.{fmt}")
    if fmt == "csv":
        write_csv(entries, out)
    elif fmt == "json":
        write_json(entries, out, verification=verification, period=period, source=source)
    else:
        from station.reports.pdf import write_pdf  # Qt only for this format

        text = report_html(
            entries, verification=verification, period=period, source=source, max_rows=pdf_max_rows, data_dir=data_dir
        )
        title = f"Audit log report: {', '.join(summarize(entries).stations) or source}"
        write_pdf(text, out, title=title, landscape=True)
    return ExportResult(out, len(entries), verification)


def write_csv(entries: Sequence[AuditEntry], out: Path) -> Path:
    with replacing(out) as tmp, tmp.open("w", newline="", encoding="utf-8-sig") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for entry in entries:
            writer.writerow([_csv_cell(getattr(entry, name)) for name in CSV_COLUMNS])
    return out


def _csv_cell(value) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return canonical_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) and not _SIGNED_NUMBER.fullmatch(value):
        return "'" + value
    return value


def write_json(
    entries: Sequence[AuditEntry],
    out: Path,
    *,
    verification: VerifyResult,
    period: tuple[str | None, str | None] = (None, None),
    source: Path | str | None = None,
) -> Path:
    document = {
        "format": "station-audit-export",
        "format_version": 1,
        "generated_utc": datetime.now().astimezone().isoformat(timespec="seconds"),
        "app_version": __version__,
        "source": None if source is None else str(source),
        "period": {"from": period[0], "to": period[1]},
        "hashing": (
            "hash = sha256_hex(prev_hash + canonical_json(entry without prev_hash and hash)); "
            "canonical_json = json.dumps(sort_keys=True, separators=(',', ':'), ensure_ascii=False); "
            "the first entry's prev_hash is 64 zeros"
        ),
        "signing": (
            "signature = Ed25519 by the entry's signing_key (raw public key, hex) over the ASCII bytes "
            "'station-audit-head:' + id + ':' + hash; a station's first signed entry fixes its key"
        ),
        "signed_head": signed_head(verification),
        "verification": asdict(verification),
        "summary": asdict(summarize(entries)),
        "entries": [entry.to_dict() for entry in entries],
    }
    with replacing(out) as tmp:
        tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


# -- PDF report (HTML for station.reports.pdf) ------------------------------------------------------


def report_html(
    entries: Sequence[AuditEntry],
    *,
    verification: VerifyResult,
    period: tuple[str | None, str | None] = (None, None),
    source: Path | str | None = None,
    thumbnails: bool = True,
    max_rows: int | None = DEFAULT_PDF_MAX_ROWS,
    data_dir: Path | None = None,
) -> str:
    """The inspector's report as HTML that QTextDocument lays out (tables, no CSS layout)."""
    summary = summarize(entries)
    esc = html.escape
    generated = datetime.now().astimezone()
    period_text = (
        f"{esc(period[0] or 'the first entry')} to {esc(period[1] or 'the last entry')} (station local time)"
    )
    if summary.first_time_utc:
        period_text += (
            f"<br>entries from {esc(_local_text(entries[0]))} to {esc(_local_text(entries[-1]))}"
        )
    if verification.ok:
        chain = (
            f"<span class='ok'>PASSED</span>: all {verification.n_entries} entries of the log verified; "
            f"the hash chain is intact."
        )
    else:
        chain = (
            f"<span class='bad'>FAILED at entry {verification.first_bad_id}</span>: {esc(verification.reason)}. "
            f"{verification.n_verified} of {verification.n_entries} entries verified before it. "
            "Entries from that one on cannot be trusted."
        )
    chain += f"<br>Head (for <tt>verify --expect-head</tt>): <tt>{verification.anchor}</tt>"
    if verification.head_signature:
        chain += (
            f"<br>Signed by station {esc(str(verification.head_station))}: "
            f"<tt style='font-size: 6pt'>{verification.head_signature}</tt>"
        )
    for station, public_key in sorted(verification.station_keys.items()):
        chain += f"<br>Key of station {esc(station)}: <tt>{fingerprint(public_key)}</tt>"
    chain += "".join(f"<br><span class='bad'>Failed:</span> {esc(p)}" for p in verification.problems)
    chain += "".join(f"<br><span class='bad'>Warning:</span> {esc(w)}" for w in verification.warnings)

    listed = entries[:max_rows] if max_rows is not None else entries
    # Hashing every archived image costs a full read of each; only the listed entries are checked
    # here (`station audit verify --images` checks them all).
    files = {e.id: _image_file(e.image_path, data_dir) for e in listed}
    statuses = {e.id: image_status(e.image_sha256, files[e.id]) for e in listed}
    image_counts = Counter(s for s in statuses.values() if s)
    images_text = ", ".join(f"{n} {status}" for status, n in sorted(image_counts.items())) or "no images"
    if image_counts.get("missing") or image_counts.get("altered"):
        images_text = f"<span class='bad'>{images_text}</span>"

    meta_rows = [
        ("Station", esc(", ".join(summary.stations) or "(no entries)")),
        ("Period", period_text),
        ("Entries in period", str(summary.n_entries)),
        ("Operators", esc(", ".join(summary.operators) or "-")),
        ("Archived images" if len(listed) == len(entries) else "Archived images (listed entries)", images_text),
        ("Audit log", esc(str(source)) if source else "-"),
        ("Generated", f"{esc(generated.isoformat(sep=' ', timespec='seconds'))} by station {esc(__version__)}"),
    ]
    parts = [
        f"<html><head><style>{PAGE_CSS}</style></head><body>",
        "<h1>Audit log report</h1>",
        "<table class='meta' cellspacing='0' cellpadding='1'>",
        *(f"<tr><td><b>{label}</b>&nbsp;&nbsp;</td><td>{value}</td></tr>" for label, value in meta_rows),
        "</table>",
        "<h2>Chain verification</h2>",
        f"<p>{chain}</p>",
        "<h2>Counts</h2>",
        "<table cellspacing='0'><tr>",
        *(
            f"<td style='padding-right: 24px'>{_counts_table(title, counts)}</td>"
            for title, counts in (
                ("Action", _titled(summary.by_action, action_title)),
                ("Material", _titled(summary.by_material, display_name)),
                ("Verdict", _titled(summary.by_verdict, verdict_title)),
            )
        ),
        "</tr></table>",
        "<h2>Entries</h2>",
        *(
            [
                f"<p class='bad'>This table lists the first {max_rows} of the {len(entries)} entries in the period. "
                "Export a shorter period, or CSV/JSON for every entry.</p>"
            ]
            if max_rows is not None and len(entries) > max_rows
            else []
        ),
        _entries_table(listed, statuses, files, thumbnails),
        "</body></html>",
    ]
    return "\n".join(parts)


def _titled(counts: dict[str, int], title) -> dict[str, int]:
    """The counts under the words the screens use, the recorded name beside where it differs."""
    return {_title_and_raw(raw, title): n for raw, n in counts.items()}


def _title_and_raw(raw: str, title) -> str:
    if raw == "(none)":
        return raw
    words = title(raw)
    return words if words.lower() == raw.lower() else f"{words} ({raw})"


def _counts_table(title: str, counts: dict[str, int]) -> str:
    nowrap = "style='white-space: nowrap'"  # the outer layout table would otherwise squeeze words apart
    rows = "".join(
        f"<tr><td {nowrap}>{html.escape(k)}</td><td align='right' {nowrap}>{n}</td></tr>" for k, n in counts.items()
    )
    rows = rows or "<tr><td colspan='2'>-</td></tr>"
    return f"<table {_GRID}><tr><th {nowrap}>{title}</th><th {nowrap}>n</th></tr>{rows}</table>"


def _entries_table(
    entries: Sequence[AuditEntry], statuses: dict[int, str], files: dict[int, Path | None], thumbnails: bool
) -> str:
    esc = html.escape
    header = (
        "<thead><tr><th>#</th><th>Time (local)</th><th>Operator</th><th>Action</th><th>Chip / lot / serial</th>"
        "<th>Material</th><th>Findings</th><th>Verdict</th><th>Reason / decap / refers to</th><th>Image</th></tr></thead>"
    )
    cache: dict[str, str] = {}
    rows = []
    for e in entries:
        ids = " / ".join(esc(v) for v in (e.chip_id, e.lot_id, e.serial_id) if v) or "-"
        # the screens' words, with the recorded name (what CSV, JSON and `audit list` show) beneath
        action = f"{esc(action_title(e.action))}<br><span class='small'>{esc(e.action)}</span>"
        material = esc(display_name(e.material) if e.material else "-")
        if e.predicted_material and e.predicted_material != e.material:
            material = f"{esc(display_name(e.predicted_material))} &rarr; {material}"
        probability = e.probabilities.get(e.predicted_material or "") if e.predicted_material else None
        if isinstance(probability, (int, float)):
            material += f"<br><span class='small'>p={probability:.2f}</span>"
        findings = []
        if e.uncertain:
            findings.append("<span class='bad'>UNCERTAIN</span>")
        if e.defects:
            top = ", ".join(
                f"{esc(display_name(str(d.get('class', d.get('label', '?')))))} {d['score']:.2f}"
                if isinstance(d.get("score"), (int, float))
                else esc(display_name(str(d.get("class", d.get("label", "?")))))
                for d in e.defects[:3]
            )
            more = f" +{len(e.defects) - 3}" if len(e.defects) > 3 else ""
            findings.append(f"{len(e.defects)} defect(s): {top}{more}")
        notes = []
        if e.reason:
            notes.append(f"<i>{esc(e.reason)}</i>")
        signed = e.details.get("signature")
        if isinstance(signed, dict):  # as the entry form on the screen words it
            notes.append(f"signed by {esc(signature_text(signed, e.local_time.tzinfo))}")
        if e.decap_method:
            notes.append(f"decap: {esc(e.decap_method)}")
        if e.refers_to is not None:
            notes.append(f"refers to #{e.refers_to}")
        if e.recipe:
            notes.append(f"<span class='small'>recipe: {esc(e.recipe)}</span>")
        capture = capture_text(e.details)
        if capture:
            notes.append(f"<span class='small'>{esc(capture)}</span>")
        rows.append(
            "<tr>"
            f"<td>{e.id}</td><td>{esc(_local_text(e))}</td><td>{esc(e.operator_id)}</td><td>{action}</td>"
            f"<td>{ids}</td><td>{material}</td><td>{'<br>'.join(findings) or '-'}</td>"
            f"<td>{esc(verdict_title(e.verdict) if e.verdict else '-')}</td>"
            f"<td>{'<br>'.join(notes) or '-'}</td><td>{_image_cell(e, statuses[e.id], files[e.id], thumbnails, cache)}</td>"
            "</tr>"
        )
    body = "".join(rows) or "<tr><td colspan='10'>No entries in this period.</td></tr>"
    return f"<table class='entries' {_GRID} width='100%'>{header}{body}</table>"


def capture_text(details: dict) -> str:
    """"camera Basler acA2440 (serial 4001), 2448×2048, exposure 2000 µs, gain 0; objective 20x, 0.512 µm/px"."""
    parts = []
    camera = details.get("camera")
    if isinstance(camera, dict):
        name = camera.get("model") or camera.get("spec") or ""
        serial = f" (serial {camera['serial']})" if camera.get("serial") else ""
        words = [f"camera {name}{serial}".strip()] if name else []
        if camera.get("width") and camera.get("height"):
            words.append(f"{camera['width']}×{camera['height']}")
        if camera.get("exposure") is not None:
            words.append(f"exposure {camera['exposure']:g} {camera.get('exposure_unit', '')}".strip())
        if camera.get("gain") is not None:
            words.append(f"gain {camera['gain']:g}")
        parts.append(", ".join(words))
    objective = details.get("objective")
    if isinstance(objective, dict):
        parts.append(f"objective {objective.get('name', '?')}, {scale_text(objective.get('um_per_px'))}")
    return "; ".join(p for p in parts if p)


def _image_cell(entry: AuditEntry, status: str, file: Path | None, thumbnails: bool, cache: dict[str, str]) -> str:
    if not status:
        return "-"
    label = f"<span class='small'>{entry.image_sha256[:12] if entry.image_sha256 else ''}</span>"
    if status != "ok":
        return f"<span class='bad'>{status.upper()}</span><br>{label}"
    if not thumbnails:
        return label
    if entry.image_path not in cache:
        cache[entry.image_path] = _thumbnail_data_uri(file)
    uri = cache[entry.image_path]
    return f"<img src='{uri}'><br>{label}" if uri else label


def _thumbnail_data_uri(path: Path) -> str:
    """A small PNG of the archived image as a data URI ("" if it cannot be read)."""
    import cv2
    import numpy as np

    data = np.frombuffer(path.read_bytes(), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        return ""
    height, width = image.shape[:2]
    scale = _THUMBNAIL_SIDE_PX / max(height, width)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", image)
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii") if ok else ""


def _image_file(image_path: str | None, data_dir: Path | None) -> Path | None:
    if not image_path:
        return None
    path = Path(image_path)
    return path if path.is_absolute() or data_dir is None else data_dir / path


def signed_head(verification: VerifyResult) -> dict:
    """The head an export vouches for, with the signature anyone can check against the station's key."""
    public_key = verification.station_keys.get(verification.head_station or "")
    return {
        "id": verification.head_id,
        "hash": verification.head_hash,
        "anchor": verification.anchor,
        "station_id": verification.head_station,
        "signature": verification.head_signature,
        "public_key": public_key,
        "fingerprint": fingerprint(public_key) if public_key else None,
        "station_keys": {station: fingerprint(key) for station, key in sorted(verification.station_keys.items())},
    }


def _local_text(entry: AuditEntry) -> str:
    return recorded_time_text(entry.local_time, entry.utc_offset)
