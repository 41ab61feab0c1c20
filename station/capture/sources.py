"""``open_source(spec)``: the one place that turns what the operator typed into a source.

========================  ==============================================
spec                      source
========================  ==============================================
``demo``                  :class:`SimulatedMicroscope`
``0``, ``1``, ...         :class:`CameraSource` by device index
``rtsp://...`` etc.       :class:`CameraSource` on a network stream
``/dev/v4l/by-id/...``    :class:`CameraSource` on a V4L2 device path
``genicam:<id>``          :class:`GenICamSource` (Aravis): device id, serial or IP address
a folder or image file    :class:`ImageFolderSource`
any other file            :class:`VideoFileSource`
========================  ==============================================

The source is built, not opened: open it on the capture thread (``with source:`` or
``source.open()``), where a missing camera raises :class:`SourceError`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from station.capture.base import FrameSource, SourceError
from station.capture.camera import CameraSource, is_device_path, is_stream_url
from station.capture.folder import ImageFolderSource
from station.capture.genicam import GenICamSource, genicam_id, is_genicam_spec
from station.capture.images import is_image_path
from station.capture.simulated import SimulatedMicroscope
from station.capture.video import VideoFileSource
from station.config import CameraSettings

DEMO_SPECS = ("demo", "sim", "simulated", "simulator")
SOURCE_KINDS: tuple[type[FrameSource], ...] = (
    SimulatedMicroscope, CameraSource, GenICamSource, VideoFileSource, ImageFolderSource
)

_SPEC_HELP = (
    "a source is 'demo', a camera index (0, 1, ...), a device path (/dev/v4l/by-id/...), 'genicam:<id>', "
    "a stream URL (rtsp://, http://), a video file or an image folder; `station cameras` lists the attached cameras"
)


#: the saved camera settings (``settings.camera``) that reach a camera when it opens
CAMERA_SETTING_NAMES = (
    "width", "height", "fps", "exposure", "backend", "stall_timeout_s",
    "gain", "white_balance", "pixel_format", "roi", "trigger",
)


def camera_options(camera: CameraSettings | None) -> dict[str, Any]:
    """The saved camera settings as ``open_source`` options (unset ones left out)."""
    if camera is None:
        return {}
    return {name: getattr(camera, name) for name in CAMERA_SETTING_NAMES if getattr(camera, name, None) is not None}


def open_source(spec: str, *, camera: CameraSettings | None = None, **options: Any) -> FrameSource:
    """The source ``spec`` names, built with the ``options`` that apply to it.

    Options that do not apply to the chosen kind are ignored, so a caller can always pass
    the camera settings (``width``, ``height``, ``fps``, ``exposure``, ``stall_timeout_s``);
    an option no kind of source knows raises TypeError (a typo, not a setting).
    ``camera`` (the saved settings) applies to cameras and streams only: the demo, a video
    file and a folder keep their own size and rate; explicit ``options`` win over it.
    """
    text = str(spec).strip()
    if not text:
        raise SourceError(f"No source given: {_SPEC_HELP}")
    _check_options(options)
    if camera is not None and (text.isdigit() or is_stream_url(text) or is_device_path(text) or is_genicam_spec(text)):
        options = {**camera_options(camera), **options}
    if text.lower() in DEMO_SPECS:
        return _build(SimulatedMicroscope, (), options)
    if text.isdigit():
        return _build(CameraSource, (int(text),), options)
    if is_stream_url(text) or is_device_path(text):
        return _build(CameraSource, (text,), options)
    if is_genicam_spec(text):
        return _build(GenICamSource, (genicam_id(text),), options)
    path = Path(text).expanduser()
    if path.is_dir() or (path.is_file() and is_image_path(path)):
        return _build(ImageFolderSource, (path,), options)
    if path.is_file():
        return _build(VideoFileSource, (path,), options)
    raise SourceError(f"No such file or folder: '{text}' ({_SPEC_HELP})")


def _keyword_names(kind: type[FrameSource]) -> set[str]:
    parameters = inspect.signature(kind.__init__).parameters.values()
    return {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _check_options(options: dict[str, Any]) -> None:
    known = set().union(*(_keyword_names(kind) for kind in SOURCE_KINDS))
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown source option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _build(kind: type[FrameSource], args: tuple[Any, ...], options: dict[str, Any]) -> FrameSource:
    accepted = _keyword_names(kind)
    return kind(*args, **{name: value for name, value in options.items() if name in accepted and value is not None})
