"""``station users``: add, list, disable, enable, passwd and role (an admin, with their password).

    station users add --first-admin ID --name "Ann Admin"      # a station without users
    station users add ID --name NAME --role technician --admin ADMIN_ID
    station users role ID expert --admin ADMIN_ID

Passwords are asked for on the terminal (never on the command line); when standard input is
not a terminal, each is read as one line from it (the admin's first, then the new one).
Exit codes: 0 done; 1 refused (wrong password, locked account, not an admin); 2 bad arguments
or an unreadable log.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

ROLES = ("technician", "expert", "admin")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add a user (or, on a station without users, --first-admin)")
    add.add_argument("user_id", metavar="ID", help="the sign-in ID (what a badge scan types)")
    add.add_argument("--name", required=True, help="full name, shown on every signature")
    add.add_argument("--role", choices=ROLES, default="technician")
    add.add_argument("--first-admin", action="store_true", help="the station's first admin (no --admin needed)")
    _add_common(add, admin_required=False)

    listing = sub.add_parser("list", help="every user with role and state")
    _add_common(listing)

    for name, help_text in (("disable", "stop a user from signing in or signing"), ("enable", "allow a disabled user again")):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("user_id", metavar="ID")
        _add_common(command)

    passwd = sub.add_parser("passwd", help="set a user's password (also opens a locked account)")
    passwd.add_argument("user_id", metavar="ID")
    _add_common(passwd)

    role = sub.add_parser("role", help="change a user's role")
    role.add_argument("user_id", metavar="ID")
    role.add_argument("role", choices=ROLES)
    _add_common(role)


def _add_common(parser: argparse.ArgumentParser, admin_required: bool = True) -> None:
    parser.add_argument("--admin", required=admin_required, metavar="ADMIN_ID",
                        help="the admin doing this (asked for their password)")
    parser.add_argument("--db", type=Path, help="audit database (default: the station's own log)")


def read_secret(prompt: str, confirm: bool = False) -> str:
    """A password from the terminal (not echoed), or one line of standard input."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise EOFError(f"no password on standard input for: {prompt.strip()}")
        return line.rstrip("\r\n")
    secret = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != secret:
        raise ValueError("the two passwords differ")
    return secret


def open_directory(db: Path | None):
    from station.audit import AuditLog
    from station.config import load_settings
    from station.users.directory import UserDirectory

    log = AuditLog(db) if db is not None else AuditLog()
    return UserDirectory(log, lockout_s=load_settings().lockout_minutes * 60)


def admin_signature(directory, admin_id: str, permission):
    return directory.sign(admin_id, read_secret(f"password of {admin_id}: "), permission)


def run(args: argparse.Namespace) -> int:
    from station.audit.entry import AuditError
    from station.users.directory import AuthenticationError
    from station.users.roles import PermissionDenied

    try:
        directory = open_directory(args.db)
        return _COMMANDS[args.users_command](directory, args)
    except (AuthenticationError, PermissionDenied) as exc:
        print(f"station users {args.users_command}: refused: {exc}", file=sys.stderr)
        return 1
    except (AuditError, ValueError, KeyError, EOFError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else exc
        print(f"station users {args.users_command}: {message}", file=sys.stderr)
        return 2


def _manager(directory, args):
    from station.users.roles import Permission

    return admin_signature(directory, args.admin, Permission.MANAGE_USERS)


def _add(directory, args) -> int:
    if args.first_admin:
        if args.admin:
            raise ValueError("--first-admin creates the first admin; it takes no --admin")
        password = read_secret(f"new password for {args.user_id}: ", confirm=True)
        user = directory.add_first_admin(args.user_id, args.name, password)
    else:
        if not args.admin:
            raise ValueError("--admin ADMIN_ID is needed (or --first-admin on a station without users)")
        signature = _manager(directory, args)
        password = read_secret(f"new password for {args.user_id}: ", confirm=True)
        user = directory.add(signature, args.user_id, args.name, args.role, password)
    print(f"added {user.user_id} ({user.name}), {user.role.value}; audit entry #{user.changed_entry}")
    return 0


def _list(directory, args) -> int:
    _manager(directory, args)
    users = directory.users()
    for user in sorted(users.values(), key=lambda u: u.user_id):
        state = "disabled" if user.disabled else "active"
        until = directory.locked_until(user.user_id)
        if until is not None:
            state = f"locked until {until.astimezone():%Y-%m-%d %H:%M:%S}"
        demo = "  [DEMO account]" if user.demo else ""
        print(f"{user.user_id:<20} {user.role.value:<11} {state:<28} {user.name}{demo}")
    if not users:
        print("no users (create the first admin: station users add --first-admin ID --name NAME)")
    return 0


def _disable(directory, args) -> int:
    user = directory.disable(_manager(directory, args), args.user_id)
    print(f"disabled {user.user_id}; audit entry #{user.changed_entry}")
    return 0


def _enable(directory, args) -> int:
    user = directory.enable(_manager(directory, args), args.user_id)
    print(f"enabled {user.user_id}; audit entry #{user.changed_entry}")
    return 0


def _passwd(directory, args) -> int:
    signature = _manager(directory, args)
    user = directory.set_password(signature, args.user_id, read_secret(f"new password for {args.user_id}: ", confirm=True))
    print(f"new password for {user.user_id}; audit entry #{user.changed_entry}")
    return 0


def _role(directory, args) -> int:
    user = directory.set_role(_manager(directory, args), args.user_id, args.role)
    print(f"{user.user_id} is now {user.role.value}; audit entry #{user.changed_entry}")
    return 0


_COMMANDS = {"add": _add, "list": _list, "disable": _disable, "enable": _enable, "passwd": _passwd, "role": _role}


def approval_states(model_dirs: list[Path]) -> list[str]:
    """For ``station models list``: whether the station's log approves each folder as it is now."""
    from station.audit import AuditLog
    from station.audit.entry import AuditError
    from station.ml.cards import ModelLoadError
    from station.users.approvals import ModelApprovals, ModelHashes

    try:
        with AuditLog(readonly=True) as log:
            approvals = ModelApprovals.from_log(log)
    except AuditError:
        approvals = ModelApprovals()
    states = []
    for model_dir in model_dirs:
        try:
            approval = approvals.find(ModelHashes.of(model_dir))
        except (ModelLoadError, OSError) as exc:
            states.append(f"unreadable: {exc}")
            continue
        states.append(f"approved (entry #{approval.entry_id}, {approval.approver_id})" if approval
                      else "NOT approved for use (station models approve DIR --admin ID)")
    return states


def approve_models(args: argparse.Namespace) -> int:
    """``station models approve MODEL_DIR ... --admin ID`` (configured in ``station.ml.cli``)."""
    from station.audit.entry import AuditError
    from station.ml.cards import ModelLoadError, load_card
    from station.users.approvals import ModelApprovals, ModelHashes, approve_model
    from station.users.directory import AuthenticationError
    from station.users.roles import Permission, PermissionDenied

    try:
        for model_dir in args.models:  # every folder a readable model before the admin is asked anything
            load_card(model_dir)
            ModelHashes.of(model_dir)
        directory = open_directory(args.db)
        signature = admin_signature(directory, args.admin, Permission.APPROVE_MODEL)
        approvals = ModelApprovals.from_log(directory.log)
        for model_dir in args.models:
            hashes = ModelHashes.of(model_dir)
            earlier = approvals.find(hashes)
            if earlier is not None:
                print(f"{model_dir}: {hashes.name} is already approved (entry #{earlier.entry_id}, {earlier.approver_id})")
                continue
            entry = approve_model(directory.log, model_dir, signature)
            print(f"{model_dir}: {hashes.name} approved by {signature.signer_id}; audit entry #{entry.id} "
                  f"(weights {hashes.weights_sha256[:12]}…, card {hashes.card_sha256[:12]}…)")
    except (AuthenticationError, PermissionDenied) as exc:
        print(f"station models approve: refused: {exc}", file=sys.stderr)
        return 1
    except (ModelLoadError, AuditError, ValueError, EOFError, OSError) as exc:
        print(f"station models approve: {exc}", file=sys.stderr)
        return 2
    return 0
