"""Versioned user settings, stored as JSON in the user's config dir.

Each schema change bumps ``SCHEMA_VERSION`` and adds a migration from the previous
version, so an old settings file is upgraded instead of being thrown away.

A lab admin sets machine-wide values in ``settings.json`` of ``paths.machine_config_dir()``
(``C:\\ProgramData\\station\\config`` on Windows, ``/etc/xdg/station/config`` on Linux): the lab's
``audit_url``, the ``station_id``, ``data_folder``. They are every user's defaults; a value in the
user's own file overrides them. The user's file keeps only what differs from the machine's values,
so a later change by the admin reaches every user who did not choose otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from station import paths

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2


@dataclass
class CameraSettings:
    source: str = "demo"  # "demo", a camera index ("0"), an URL, a video file or an image folder
    width: int = 1280
    height: int = 960
    fps: float = 30.0
    exposure: float | None = None  # the backend's units: V4L2 100 µs steps, DirectShow/MSMF log2 s (docs/CAMERAS.md)
    backend: str = "auto"  # auto (DirectShow on Windows, V4L2 on Linux) | dshow | msmf | v4l2 | avfoundation | any
    stall_timeout_s: float = 3.0
    # GenICam cameras (genicam:<id>, docs/CAMERAS.md); exposure is µs there, width/height do not apply
    gain: float | None = None  # the camera's gain units (dB on most); None leaves it as it is
    white_balance: list[float] | None = None  # [red, blue] ratios to green
    pixel_format: str = ""  # Mono8, Mono12, BayerRG8, ...; "" keeps the camera's
    roi: str = ""  # region of interest WIDTHxHEIGHT+X+Y; "" the whole sensor
    trigger: str = "free-run"  # free-run | software (one frame per read)


@dataclass
class Settings:
    version: int = SCHEMA_VERSION
    station_id: str = field(default_factory=lambda: os.environ.get("STATION_ID", "") or _hostname())
    recipe: str = "IC package (demo)"
    device: str = "auto"  # auto | cpu | cuda
    camera: CameraSettings = field(default_factory=CameraSettings)
    foot_pedal_key: str = "F12"
    # the microscope's objectives by name ("5x", "20x"), each with its calibrated image scale in µm per
    # pixel (None: not calibrated); ``objective`` is the one in use, recorded with every capture
    objectives: dict[str, float | None] = field(default_factory=dict)
    objective: str = ""
    show_attention: bool = True
    attention_opacity: float = 0.45
    show_boxes: bool = True
    last_operator_id: str = ""
    idle_lock_minutes: float = 10.0  # an idle signed-in session locks after this long (0: never)
    lockout_minutes: float = 15.0  # an account locks this long after 5 failed tries in a row
    # developer setting for training work: load models no admin approved (station.users.approvals)
    allow_unapproved_models: bool = False
    last_batch_folder: str = ""
    batch_recursive: bool = True  # batch review also reads subfolders (the operator's last choice)
    batch_onnxruntime: bool = False  # batch review without maps runs the networks on ONNX Runtime (CPU)
    max_image_megapixels: float = 100.0  # an image whose header claims more is refused before decoding (0: no cap)
    audit_url: str = ""  # postgresql://ROLE@HOST/DB: the lab's shared audit log; empty: the local file (docs/LAB-LOG.md)
    # the local audit log and image archive: "" the machine's data folder where the installer made
    # one, else the user's; "user" the user's; or a folder (station.paths.data_dir)
    data_folder: str = ""


    @property
    def um_per_px(self) -> float | None:
        """The image scale of the objective in use (None: none chosen, or not calibrated)."""
        return self.objectives.get(self.objective)


def _hostname() -> str:
    import socket

    return socket.gethostname() or "station"


DEFAULT_OBJECTIVE = "default"


def _objectives_from_scale(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had one ``um_per_px`` for every magnification: it becomes the objective "default"."""
    data = dict(data)
    scale = data.pop("um_per_px", None)
    if scale:
        data["objectives"] = {DEFAULT_OBJECTIVE: float(scale), **(data.get("objectives") or {})}
        data.setdefault("objective", DEFAULT_OBJECTIVE)
    return data


# version -> function upgrading a dict of that version to version + 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _objectives_from_scale}


def settings_path() -> Path:
    return paths.settings_file()


def _from_dict(cls, data: dict[str, Any]):
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        if name not in known:
            continue
        if name == "camera" and isinstance(value, dict):
            value = _from_dict(CameraSettings, value)
        kwargs[name] = value
    return cls(**kwargs)


def machine_settings_path() -> Path:
    return paths.machine_settings_file()


def _read_settings_file(path: Path) -> dict[str, Any]:
    """The file's values, migrated to ``SCHEMA_VERSION``; {} when it is missing or unreadable (logged)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # Notepad writes a BOM
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = int(data.get("version", 1))
        while version < SCHEMA_VERSION:
            data = MIGRATIONS[version](data)
            version += 1
        data["version"] = SCHEMA_VERSION
        return data
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("settings file %s unreadable (%s); using defaults", path, exc)
        return {}


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            value = {**merged[name], **value}
        merged[name] = value
    return merged


def _machine_values() -> dict[str, Any]:
    return _read_settings_file(machine_settings_path())


def load_settings(path: Path | None = None) -> Settings:
    """The defaults, overridden by the machine-wide file, overridden by the user's; a missing or
    unreadable file counts as empty (with a log line for the unreadable one)."""
    data = _merged(_machine_values(), _read_settings_file(path or settings_path()))
    try:
        return _from_dict(Settings, data)
    except TypeError as exc:
        log.warning("settings unusable (%s); using defaults", exc)
        return Settings()


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write the values that differ from the machine-wide ones, atomically so a crash never
    leaves half a settings file. The station ID is kept even when it is the host name (an
    audit chain's key belongs to it), unless the machine's file names it."""
    path = path or settings_path()
    machine = _machine_values()
    base = dataclasses.asdict(_from_dict(Settings, machine))
    values = dataclasses.asdict(settings)
    own: dict[str, Any] = {"version": SCHEMA_VERSION}
    for name, value in values.items():
        if isinstance(value, dict):
            changed = {k: v for k, v in value.items() if k not in base[name] or base[name][k] != v}
            if changed:
                own[name] = changed
        elif value != base[name] or (name == "station_id" and "station_id" not in machine):
            own[name] = value
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(own, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
