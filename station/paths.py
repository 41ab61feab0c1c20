"""Where the station's files live.

The only module that knows about the frozen (PyInstaller) layout. Three kinds of place:

* bundled, read-only: ``resources/`` and ``models/`` beside the package in a checkout, or
  inside the bundle (``sys._MEIPASS``) in the frozen app; ``STATION_MODELS`` overrides models;
* per user, writable: settings, cache and logs from platformdirs;
* per machine (platformdirs' site folders; ``C:\\ProgramData\\station`` on Windows): ``config/``,
  a lab admin's settings for every user (``station.config``), and ``data/``, the audit log and
  archived images, used when it exists and can be written (the installer makes it, with modify
  rights for users); else data is per user. The ``data_folder`` setting chooses otherwise;
* ``STATION_HOME=DIR`` puts every place under DIR (tests, portable installs): the per-user ones
  in ``config/``, ``data/``, ``cache/``, ``logs/``, the machine's in ``machine/``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "station"
APP_AUTHOR = "station"


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def bundle_root() -> Path:
    """The folder holding ``resources/`` and ``models/``."""
    if is_frozen():
        return Path(sys._MEIPASS)  # type: ignore[attr-defined]
    return Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    return bundle_root() / "resources"


def models_dir() -> Path:
    override = os.environ.get("STATION_MODELS")
    return Path(override) if override else bundle_root() / "models"


def _home_override() -> Path | None:
    home = os.environ.get("STATION_HOME")
    return Path(home).expanduser().resolve() if home else None


def _ensure(path: Path) -> Path:
    """``path``, created when it can be. A folder that cannot be created (read-only or full data
    disk) is still named: reading from it works, and whoever writes there reports why it failed."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    return path


def config_dir() -> Path:
    home = _home_override()
    return _ensure(home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)))


def data_dir() -> Path:
    """The audit log and archived images: the ``data_folder`` setting's choice (see there)."""
    home = _home_override()
    return _ensure(home / "data" if home else chosen_data_dir())


def user_data_dir() -> Path:
    home = _home_override()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))


def machine_config_dir() -> Path:
    """A lab admin's settings for every user of this PC (read, never created here)."""
    home = _home_override()
    return home / "machine" / "config" if home else Path(platformdirs.site_config_dir(APP_NAME, appauthor=False)) / "config"


def machine_data_dir() -> Path:
    """The per-machine data folder, made by the installer (never created here)."""
    home = _home_override()
    return home / "machine" / "data" if home else Path(platformdirs.site_data_dir(APP_NAME, appauthor=False)) / "data"


def chosen_data_dir() -> Path:
    """Where the settings' ``data_folder`` puts the data: "" (the machine's folder when it exists
    and can be written, else the user's), "user", or a folder of its own."""
    choice = _data_folder_setting()
    if choice.lower() == "user":
        return user_data_dir()
    if choice:
        return Path(choice).expanduser()
    machine = machine_data_dir()
    return machine if machine.is_dir() and os.access(machine, os.W_OK | os.X_OK) else user_data_dir()


def settings_file() -> Path:
    return config_dir() / "settings.json"


def machine_settings_file() -> Path:
    return machine_config_dir() / "settings.json"


def _data_folder_setting() -> str:
    """``data_folder`` of the user's settings file, else of the machine's (``station.config``
    reads the rest; it imports this module, so the one value is read here)."""
    for file in (settings_file(), machine_settings_file()):
        try:
            value = json.loads(file.read_text(encoding="utf-8-sig")).get("data_folder")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str):
            return value.strip()
    return ""


def cache_dir() -> Path:
    home = _home_override()
    return _ensure(home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR)))


def log_dir() -> Path:
    home = _home_override()
    return _ensure(home / "logs" if home else Path(platformdirs.user_log_dir(APP_NAME, APP_AUTHOR)))


def audit_db_path() -> Path:
    return data_dir() / "audit.sqlite3"


def archive_dir() -> Path:
    """Lossless copies of every image an audit record refers to."""
    return _ensure(data_dir() / "archive")


def recipes_dir() -> Path:
    """User recipes (bundled ones live in ``resources/recipes``)."""
    return _ensure(config_dir() / "recipes")
