"""``station audit``: verify, export, list and show the audit log.

Exit codes: 0 fine; 1 the chain is broken (``verify``; ``export`` still writes its file) or an
entry/image check failed; 2 the log cannot be read (missing file, not an audit log) or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_DATE_HELP = "YYYY-MM-DD (whole day, local time) or an ISO 8601 time such as 2026-05-09T14:30"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(audit_command=None)
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")

    verify = sub.add_parser("verify", help="recompute the hash chain; exit 0 intact, 1 broken")
    _add_db(verify)
    verify.add_argument(
        "--images", action="store_true", help="also check that every archived image exists and matches its hash"
    )

    export = sub.add_parser("export", help="write the entries of a period as CSV, JSON or a PDF report")
    _add_db(export)
    export.add_argument("--format", required=True, choices=("csv", "json", "pdf"))
    export.add_argument("--out", required=True, type=Path, help="output file")
    export.add_argument("--from", dest="from_", metavar="DATE", help=f"first day or time (inclusive): {_DATE_HELP}")
    export.add_argument("--to", metavar="DATE", help=f"last day or time (inclusive): {_DATE_HELP}")
    export.add_argument(
        "--max-rows", type=int, help="PDF only: rows in the entry table (default 2000; 0 for all)"
    )

    listing = sub.add_parser("list", help="one line per entry, with filters")
    _add_db(listing)
    listing.add_argument("--from", dest="from_", metavar="DATE", help=_DATE_HELP)
    listing.add_argument("--to", metavar="DATE", help=_DATE_HELP)
    listing.add_argument("--operator")
    listing.add_argument("--chip")
    listing.add_argument("--material")
    listing.add_argument("--verdict")
    listing.add_argument("--action")
    listing.add_argument("--limit", type=int, default=50, help="newest N entries (default 50; 0 for all)")

    show = sub.add_parser("show", help="print one entry as JSON, with its image check")
    _add_db(show)
    show.add_argument("id", type=int)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, help="audit database (default: the station's own log)")


def run(args: argparse.Namespace) -> int:
    from station.audit.entry import AuditError

    handlers = {"verify": _verify, "export": _export, "list": _list, "show": _show}
    if args.audit_command not in handlers:
        print("station audit: choose one of verify, export, list, show (see station audit -h)", file=sys.stderr)
        return 2
    try:
        return handlers[args.audit_command](args)
    except (AuditError, ValueError) as exc:
        print(f"station audit {args.audit_command}: {exc}", file=sys.stderr)
        return 2


def _db_path(args: argparse.Namespace) -> Path:
    if args.db is not None:
        return args.db
    from station import paths

    return paths.audit_db_path()


def _verify(args: argparse.Namespace) -> int:
    from station.audit import AuditLog, verify
    from station.audit.archive import image_status

    path = _db_path(args)
    result = verify(path)
    print(f"audit log {path}")
    print(result.describe())
    code = 0 if result.ok else 1
    if args.images:
        with AuditLog(path, readonly=True) as log:
            entries = log.query()
        problems = [
            (e.id, status, e.image_path)
            for e in entries
            if (status := image_status(e.image_sha256, e.image_path)) not in ("", "ok")
        ]
        n_images = sum(1 for e in entries if e.image_sha256)
        print(f"images: {n_images - len(problems)} of {n_images} archived images match their hash")
        for entry_id, status, image_path in problems:
            print(f"  entry {entry_id}: image {status}: {image_path}")
        if problems:
            code = 1
    return code


def _export(args: argparse.Namespace) -> int:
    from station.audit.export import DEFAULT_PDF_MAX_ROWS, export

    max_rows = DEFAULT_PDF_MAX_ROWS if args.max_rows is None else (args.max_rows or None)
    result = export(args.format, args.out, db_path=_db_path(args), from_=args.from_, to=args.to, pdf_max_rows=max_rows)
    print(f"wrote {result.n_entries} entries to {result.path}")
    if not result.verification.ok:
        print(f"WARNING: the audit log failed verification: {result.verification.describe()}", file=sys.stderr)
        return 1
    return 0


def _list(args: argparse.Namespace) -> int:
    from station.audit import AuditLog

    with AuditLog(_db_path(args), readonly=True) as log:
        entries = log.query(
            from_=args.from_,
            to=args.to,
            operator=args.operator,
            chip=args.chip,
            material=args.material,
            verdict=args.verdict,
            action=args.action,
            limit=args.limit or None,
            newest_first=True,
        )
    for e in reversed(entries):
        chip = e.chip_id or "-"
        print(
            f"{e.id:>7}  {e.local_time:%Y-%m-%d %H:%M:%S}{e.utc_offset}  {e.operator_id:<12} {e.action:<16} "
            f"{chip:<14} {e.material or '-':<10} {e.verdict or '-'}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from station.audit import AuditLog
    from station.audit.archive import image_status

    with AuditLog(_db_path(args), readonly=True) as log:
        try:
            entry = log.get(args.id)
        except KeyError as exc:
            print(f"station audit show: {exc.args[0]}", file=sys.stderr)
            return 1
    print(json.dumps(entry.to_dict(), indent=2, ensure_ascii=False))
    status = image_status(entry.image_sha256, entry.image_path)
    if status:
        print(f"image: {status}")
    return 0 if status in ("", "ok") else 1
