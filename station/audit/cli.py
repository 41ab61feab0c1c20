"""``station audit``: verify, export, list and show the audit log; set up and fill a lab's server.

Exit codes: 0 fine; 1 the log fails verification (``verify``; ``export`` still writes its file), an
entry/image check failed or the export's file could not be replaced (open in another program); 2 the log cannot be read (missing file, not an audit log, server
unreachable) or bad arguments.
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

    verify = sub.add_parser("verify", help="check the hash chain, signatures and schema; exit 0 intact, 1 not")
    _add_db(verify)
    verify.add_argument(
        "--images", action="store_true", help="also check that every archived image exists and matches its hash"
    )
    verify.add_argument(
        "--expect-head", metavar="ID:HASH", help="a head written down earlier (ID:HASH or HASH) that must be in the log"
    )
    verify.add_argument(
        "--no-station-record", action="store_true",
        help="do not compare with the heads this station signed (e.g. for an older copy of the log)",
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
    export.add_argument("--expect-head", metavar="ID:HASH", help="as for verify")

    listing = sub.add_parser("list", help="one line per entry, with filters")
    _add_db(listing)
    listing.add_argument("--from", dest="from_", metavar="DATE", help=_DATE_HELP)
    listing.add_argument("--to", metavar="DATE", help=_DATE_HELP)
    listing.add_argument("--operator")
    listing.add_argument("--chip", help="the whole chip ID")
    listing.add_argument("--chip-contains", metavar="TEXT", help="chip IDs containing TEXT, any case")
    listing.add_argument("--material")
    listing.add_argument("--verdict")
    listing.add_argument("--action")
    listing.add_argument("--station")
    listing.add_argument("--limit", type=int, default=50, help="newest N entries (default 50; 0 for all)")

    show = sub.add_parser("show", help="print one entry as JSON, with its image check")
    _add_db(show)
    show.add_argument("id", type=int)

    init = sub.add_parser(
        "init-server", help="create the lab log's tables on a PostgreSQL server and the stations' INSERT+SELECT role"
    )
    init.add_argument("url", help="postgresql://OWNER@HOST/DB: a role that may create schemas and roles")
    init.add_argument("--station-role", default="station_writer", help="group role the stations get (default %(default)s)")
    init.add_argument("--login", metavar="NAME", help="also create this login role in the station role")
    init.add_argument(
        "--password-env", metavar="VAR", default="STATION_AUDIT_PASSWORD",
        help="environment variable with the login role's password (default %(default)s; else asked for)",
    )

    migrate = sub.add_parser("migrate", help="copy a local log, chain and signatures, into an empty server log")
    migrate.add_argument("--db", type=Path, help="the local log (default: the station's own file)")
    migrate.add_argument("--to", required=True, metavar="URL", help="postgresql://STATION_ROLE@HOST/DB")


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="FILE|URL",
        help="audit database file or postgresql:// URL (default: the station's own log)",
    )


def run(args: argparse.Namespace) -> int:
    from station.audit.entry import AuditError
    from station.storage import OutputFileError

    handlers = {
        "verify": _verify, "export": _export, "list": _list, "show": _show,
        "init-server": _init_server, "migrate": _migrate,
    }
    if args.audit_command not in handlers:
        print(f"station audit: choose one of {', '.join(handlers)} (see station audit -h)", file=sys.stderr)
        return 2
    try:
        return handlers[args.audit_command](args)
    except OutputFileError as exc:
        print(f"station audit {args.audit_command}: {exc}", file=sys.stderr)
        return 1
    except (AuditError, ValueError) as exc:
        print(f"station audit {args.audit_command}: {exc}", file=sys.stderr)
        return 2


def _db_path(args: argparse.Namespace) -> Path | str:
    from station.audit.backend import configured_location, is_url

    if args.db is not None:
        return args.db if is_url(args.db) else Path(args.db)
    return configured_location()


def _verify(args: argparse.Namespace) -> int:
    from station.audit import AuditLog, verify

    location = _db_path(args)
    result = verify(location, expect_head=args.expect_head, station_record=not args.no_station_record)
    print(f"audit log {result.location}")
    print(result.describe())
    code = 0 if result.ok else 1
    if args.images:
        with AuditLog(location, readonly=True) as log:
            entries = log.query()
            statuses = {e.id: log.image_status(e) for e in entries}
            here = log.station_id if log.is_server else None
        # On a lab server, other stations' images are on their own disks.
        elsewhere = [e for e in entries if here and e.station_id != here and statuses[e.id] == "missing"]
        skipped = {e.id for e in elsewhere}
        problems = [
            (e.id, statuses[e.id], e.image_path)
            for e in entries
            if statuses[e.id] not in ("", "ok") and e.id not in skipped
        ]
        n_images = sum(1 for e in entries if e.image_sha256) - len(skipped)
        print(f"images: {n_images - len(problems)} of {n_images} archived images match their hash")
        if skipped:
            print(f"images: {len(skipped)} of other stations are not on this PC (check them there)")
        for entry_id, status, image_path in problems:
            print(f"  entry {entry_id}: image {status}: {image_path}")
        if problems:
            code = 1
    return code


def _export(args: argparse.Namespace) -> int:
    from station.audit.export import DEFAULT_PDF_MAX_ROWS, export

    max_rows = DEFAULT_PDF_MAX_ROWS if args.max_rows is None else (args.max_rows or None)
    result = export(
        args.format, args.out, db_path=_db_path(args), from_=args.from_, to=args.to, pdf_max_rows=max_rows,
        expect_head=args.expect_head,
    )
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
            chip_contains=args.chip_contains,
            material=args.material,
            verdict=args.verdict,
            action=args.action,
            station=args.station,
            limit=args.limit or None,
            newest_first=True,
        )
    for e in reversed(entries):
        chip = e.chip_id or "-"
        print(
            f"{e.id:>7}  {e.local_time:%Y-%m-%d %H:%M:%S}{e.utc_offset}  {e.station_id:<12} {e.operator_id:<12} {e.action:<16} "
            f"{chip:<14} {e.material or '-':<10} {e.verdict or '-'}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from station.audit import AuditLog

    with AuditLog(_db_path(args), readonly=True) as log:
        try:
            entry = log.get(args.id)
        except KeyError as exc:
            print(f"station audit show: {exc.args[0]}", file=sys.stderr)
            return 1
        status = log.image_status(entry)
    print(json.dumps(entry.to_dict(), indent=2, ensure_ascii=False))
    if status:
        print(f"image: {status}")
    return 0 if status in ("", "ok") else 1


def _init_server(args: argparse.Namespace) -> int:
    import getpass
    import os

    from station.audit.backend import is_url
    from station.audit.pg import init_server, redact

    if not is_url(args.url):
        raise ValueError(f"init-server takes a postgresql:// URL, got {args.url!r}")
    password = None
    if args.login:
        password = os.environ.get(args.password_env) or getpass.getpass(f"password for the login role {args.login}: ")
    for line in init_server(args.url, station_role=args.station_role, login=args.login, password=password):
        print(line)
    print(f"the lab log on {redact(args.url)} is ready: set audit_url (or STATION_AUDIT_URL) on each station")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from station.audit.backend import is_url
    from station.audit.migrate import migrate
    from station.audit.pg import redact

    if not is_url(args.to):
        raise ValueError(f"--to takes a postgresql:// URL, got {args.to!r}")
    source = args.db
    if source is None:
        from station import paths

        source = paths.audit_db_path()
    n = migrate(source, args.to)
    print(f"copied {n} entries from {source} to {redact(args.to)}; the copy verifies")
    return 0
