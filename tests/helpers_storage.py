"""Run ``station`` as a user would, with STATION_HOME on a read-only or a full disk.

Read-only: as an ordinary user the home's folders are made read-only (chmod); root ignores
file modes, so as root the command runs in a private mount namespace where the home is a
read-only bind mount. Full disk: as root, a private 2 MiB tmpfs filled to the last byte (an
ordinary user cannot mount one: those tests are skipped, the in-process ones still run).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def running_as_root() -> bool:
    """False on Windows, which has no ``os.geteuid`` (and no POSIX file modes or mounts)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def skip_without_posix_permissions() -> None:
    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX file modes, users and mounts: not on Windows")


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ, "STATION_HOME": str(home), "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _station(*argv: str) -> str:
    return shlex.join([sys.executable, "-m", "station", *argv])


def _in_mount_namespace(script: str, home: Path, timeout: float) -> subprocess.CompletedProcess:
    # the suite runs as root on Linux (CI too): these are asserted, not skipped
    assert shutil.which("unshare"), "needs unshare(1) (util-linux) to give root a read-only or full disk"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    assert probe.returncode == 0, f"cannot make a private mount namespace here: {probe.stderr.decode().strip()}"
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
        capture_output=True, text=True, env=_env(home), timeout=timeout,
    )


def run_station_read_only(home: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``station ARGV`` with ``home`` (which must exist) read-only."""
    skip_without_posix_permissions()
    if not running_as_root():
        folders = [home, *(p for p in home.rglob("*") if p.is_dir())]
        for folder in folders:
            folder.chmod(0o555)
        try:
            return subprocess.run([sys.executable, "-m", "station", *argv], capture_output=True, text=True,
                                  env=_env(home), timeout=timeout)
        finally:
            for folder in folders:
                folder.chmod(0o755)
    quoted = shlex.quote(str(home))
    script = f"mount --bind {quoted} {quoted}; mount -o remount,ro,bind {quoted}; {_station(*argv)}"
    return _in_mount_namespace(script, home, timeout)


def run_station_on_full_disk(
    home: Path, setup: list[list[str]], *argv: str, timeout: float = 120, show_log: bool = False,
) -> subprocess.CompletedProcess:
    """Each ``setup`` command of ``station``, then the disk filled up, then ``station ARGV``; on a
    fresh 2 MiB tmpfs mounted at ``home``. Only as root (skipped otherwise). ``show_log``: the
    station's log file (what fitted in its last block) follows on stderr, and the exit status is cat's."""
    skip_without_posix_permissions()
    assert running_as_root(), "mounting a small tmpfs needs root (the suite runs as root, as CI does)"
    quoted = shlex.quote(str(home))
    steps = [f"mount -t tmpfs -o size=2m tmpfs {quoted}"]
    steps += [f"{_station(*command)} >/dev/null 2>&1" for command in setup]
    steps.append(f"dd if=/dev/zero of={quoted}/filler bs=4096 2>/dev/null || true")
    steps.append(_station(*argv) + (f" || true; cat {quoted}/logs/station.log >&2" if show_log else ""))
    return _in_mount_namespace("; ".join(steps[:1]) + "; " + "; ".join(steps[1:]), home, timeout)
