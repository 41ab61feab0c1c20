"""Composition root of the GUI: settings, services and the main window.

``station`` and ``station gui`` land here; ``--demo`` starts on the simulated microscope
with the bundled demo recipe.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", action="store_true", help="start on the simulated microscope (no camera needed)")
    parser.add_argument("--source", help="start on this source: camera index, stream URL, video file or image folder")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device (default: settings, auto)")
    parser.add_argument("--operator", metavar="ID", help="the ID the sign-in dialog opens with; with --demo, a demo "
                        "account (demo-tech, demo-expert, demo-admin) is signed in at start (scripted use)")
    # for documentation screenshots: optionally capture once, grab the window, quit
    parser.add_argument("--screenshot", metavar="PNG", help=argparse.SUPPRESS)
    parser.add_argument("--auto-capture", action="store_true", help=argparse.SUPPRESS)


def _redirect_missing_std_streams() -> None:
    """A windowed frozen app has no stdout/stderr; writes to None would crash."""
    if sys.stdout is None or sys.stderr is None:
        sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as the app)
        sys.stdout = sys.stdout or sink
        sys.stderr = sys.stderr or sink


# Qt's X11 plugin needs these system libraries since Qt 6.5; without them Qt aborts the process
# with a cryptic message, so say what to install before Qt starts.
_XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}


def missing_display_libraries() -> list[str]:
    """Debian package names of the X11 libraries Qt needs and this Linux machine lacks."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM") or not os.environ.get("DISPLAY"):
        return []
    if os.environ.get("WAYLAND_DISPLAY"):
        return []
    import ctypes.util

    return [package for library, package in _XCB_LIBRARIES.items() if ctypes.util.find_library(library) is None]


def _log_uncaught_exceptions() -> None:
    """An exception escaping a Qt slot would vanish in the windowed app: log it instead."""

    def hook(exc_type, exc, traceback) -> None:
        log.critical("uncaught exception", exc_info=(exc_type, exc, traceback))

    sys.excepthook = hook


def run(args: argparse.Namespace) -> int:
    _redirect_missing_std_streams()
    _log_uncaught_exceptions()
    missing = missing_display_libraries()
    if missing:
        print(
            "station: the window cannot open: Qt needs these system libraries: "
            f"{' '.join(missing)}\n  Debian/Ubuntu: sudo apt-get install {' '.join(missing)}\n"
            "  (headless commands such as `station selftest` work without them)",
            file=sys.stderr,
        )
        return 2
    # torch before Qt: on Windows, torch >= 2.9 loaded after the Qt DLLs fails to load c10.dll
    # (WinError 1114 / 126)
    import torch  # noqa: F401

    from station.audit import AuditSetup
    from station.config import load_settings
    from station.ui.application import run_window

    # read once, here: every part of the window gets these, none reads the settings files itself
    settings = load_settings()
    audit = AuditSetup.from_settings(settings)
    recipes = _recipes()
    if args.demo:
        _prepare_demo_station(settings, audit)
    sign_in = _sign_in_plan(settings, audit, args)
    if args.device:
        settings.device = args.device
    if args.demo:
        settings.camera.source = "demo"
    elif args.source:
        settings.camera.source = args.source
    return run_window(
        settings,
        _device_description(settings.device),
        recipes=recipes,
        audit=audit,
        start_source=bool(args.demo or args.source),
        **sign_in,
        screenshot=args.screenshot,
        auto_capture=args.auto_capture,
    )


def _recipes() -> dict:
    """The bundled, machine and user recipes; a broken recipe folder must not stop the window."""
    from station.inference import load_recipes

    try:
        return load_recipes()
    except Exception as exc:  # noqa: BLE001 - the window opens and says there is no recipe
        log.error("recipes could not be loaded: %s", exc)
        return {}


def _prepare_demo_station(settings, audit) -> None:
    """Demo accounts and demo approvals of the bundled models, on a station without real users."""
    from station.audit import AuditError
    from station.users.demo import prepare_demo_station
    from station.users.directory import UserDirectory

    try:
        with audit.open() as audit_log:
            for line in prepare_demo_station(UserDirectory(audit_log, lockout_s=settings.lockout_minutes * 60)):
                log.info("demo: %s", line)
    except AuditError as exc:
        log.error("demo: cannot prepare the demo accounts and approvals: %s", exc)


def _sign_in_plan(settings, audit, args) -> dict:
    """How the window starts: the first admin on a station without users, a demo account signed
    in (``--demo --operator demo-tech``), or the sign-in dialog (with the demo accounts named
    while only those exist)."""
    from station.audit import AuditError
    from station.users.demo import DEMO_ACCOUNTS, DEMO_HINT
    from station.users.directory import AuthenticationError, UserDirectory

    user_id = (args.operator or "").partition(":")[0].strip()
    plan: dict = {"sign_in_id": user_id}
    try:
        with audit.open() as audit_log:
            directory = UserDirectory(audit_log, lockout_s=settings.lockout_minutes * 60)
            users = directory.users()
            if not users:
                return {**plan, "first_admin": True}
            if all(user.demo for user in users.values()):
                plan["sign_in_hint"] = DEMO_HINT
            demo_passwords = {account[0]: account[3] for account in DEMO_ACCOUNTS}
            if args.demo and user_id in demo_passwords and users.get(user_id) and users[user_id].demo:
                try:
                    plan["user"] = directory.sign_in(user_id, demo_passwords[user_id])
                except AuthenticationError as exc:
                    log.warning("demo account %s not signed in: %s", user_id, exc)
    except AuditError as exc:
        log.error("users cannot be read from the audit log: %s", exc)
    return plan


def _device_description(preference: str) -> str:
    from station.devices import describe_device, resolve_device

    try:
        return describe_device(resolve_device(preference))
    except (RuntimeError, ValueError) as exc:
        log.warning("%s; using the CPU", exc)
        return describe_device(resolve_device("cpu"))
