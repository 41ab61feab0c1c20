"""GenICam cameras (GigE Vision, USB3 Vision) through Aravis 0.8.

A camera is named by a stable id, never an index: ``genicam:<id>`` where the id is the device id
Aravis lists (``station cameras`` prints it), the camera's serial number or its IP address;
``genicam`` alone opens the first camera found. Exposure is in µs (GenICam's ``ExposureTime``),
gain in the camera's units (dB on most), white balance as red and blue ratios to green, the
region of interest as ``WIDTHxHEIGHT+X+Y`` (empty: the whole sensor). Every setting is read back;
one the camera refused or changed is reported with the value it uses.

Frames are polled from the Aravis stream in ``read()`` (``timeout_pop_buffer``), so the source
starts no Python thread and calls nothing back; Aravis's own stream thread lives in C.
A camera that delivers nothing for ``stall_timeout_s`` counts as lost and is reopened with
backoff until it is back.

Needs PyGObject and Aravis's introspection data (Debian ``gir1.2-aravis-0.8``,
scripts/install-system-deps.sh); without them, opening raises :class:`GenICamUnavailable`.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from station.capture.base import Backoff, CameraInfo, Frame, ReconnectingSource, SourceError, describe_mode

log = logging.getLogger(__name__)

SPEC_PREFIX = "genicam"
TRIGGERS = ("free-run", "software")
STREAM_BUFFERS = 4

#: GenICam pixel formats the source converts to RGB uint8 -> (bits per sample, Bayer conversion or None)
MONO_BITS = {"Mono8": 8, "Mono10": 10, "Mono12": 12, "Mono14": 14, "Mono16": 16}
BAYER_CODES = {
    "RG": cv2.COLOR_BayerRGGB2RGB,
    "GR": cv2.COLOR_BayerGRBG2RGB,
    "GB": cv2.COLOR_BayerGBRG2RGB,
    "BG": cv2.COLOR_BayerBGGR2RGB,
}
BAYER_FORMAT = re.compile(r"^Bayer(RG|GR|GB|BG)(8|10|12|16)$")
SUPPORTED_PIXEL_FORMATS = (
    *MONO_BITS,
    *(f"Bayer{pattern}{bits}" for pattern in BAYER_CODES for bits in (8, 10, 12, 16)),
    "RGB8",
    "BGR8",
)


class GenICamUnavailable(SourceError):
    """Aravis or PyGObject is not installed: the message says which and how to get it."""


def load_aravis() -> Any:
    """The ``gi.repository.Aravis`` module (0.8), or :class:`GenICamUnavailable` saying what is missing."""
    try:
        import gi
    except ImportError as exc:
        raise GenICamUnavailable(
            "GenICam cameras need PyGObject (pip install PyGObject; it builds against the Debian packages "
            "libgirepository1.0-dev and libcairo2-dev from scripts/install-system-deps.sh)"
        ) from exc
    try:
        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError) as exc:
        raise GenICamUnavailable(
            f"GenICam cameras need Aravis 0.8 (Debian package gir1.2-aravis-0.8, scripts/install-system-deps.sh): {exc}"
        ) from exc
    return Aravis


def is_genicam_spec(spec: str) -> bool:
    text = spec.strip().lower()
    return text == SPEC_PREFIX or text.startswith(SPEC_PREFIX + ":")


def genicam_id(spec: str) -> str:
    """The camera id in ``genicam:<id>`` ("" for the first camera found)."""
    return spec.strip()[len(SPEC_PREFIX) + 1:].strip() if ":" in spec else ""


# -- pixel formats ---------------------------------------------------------------------------


def genicam_to_rgb(data: bytes | np.ndarray, width: int, height: int, pixel_format: str) -> np.ndarray:
    """HxWx3 RGB uint8 from a GenICam buffer (unpacked formats; 10-16 bit samples are little-endian uint16)."""
    raw = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data)
    raw = raw.reshape(-1).view(np.uint8)
    if pixel_format in ("RGB8", "BGR8"):
        image = raw[: width * height * 3].reshape(height, width, 3)
        return np.ascontiguousarray(image if pixel_format == "RGB8" else image[..., ::-1])
    bayer = BAYER_FORMAT.match(pixel_format)
    bits = MONO_BITS.get(pixel_format) or (int(bayer.group(2)) if bayer else None)
    if bits is None:
        raise SourceError(
            f"pixel format {pixel_format} is not supported (packed formats are not unpacked here); "
            f"choose one of {', '.join(SUPPORTED_PIXEL_FORMATS)}"
        )
    if bits == 8:
        plane = raw[: width * height].reshape(height, width)
    else:
        plane = raw[: width * height * 2].view("<u2").reshape(height, width)
    image = cv2.cvtColor(plane, BAYER_CODES[bayer.group(1)]) if bayer else cv2.cvtColor(plane, cv2.COLOR_GRAY2RGB)
    if bits > 8:
        image = (image >> (bits - 8)).astype(np.uint8)
    return image


# -- region of interest ------------------------------------------------------------------------


@dataclass(frozen=True)
class Roi:
    """A region of interest on the sensor, in pixels."""

    width: int
    height: int
    x: int = 0
    y: int = 0

    @classmethod
    def parse(cls, text: str) -> Roi:
        """``"640x480+64+32"`` (or ``"640x480"`` at the top-left corner)."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*(?:\+\s*(\d+)\s*\+\s*(\d+))?\s*", text)
        if not match:
            raise ValueError(f"a region of interest is WIDTHxHEIGHT+X+Y, e.g. 640x480+64+32; got {text!r}")
        width, height, x, y = (int(group or 0) for group in match.groups())
        if width <= 0 or height <= 0:
            raise ValueError(f"the region of interest {text!r} is empty")
        return cls(width, height, x, y)

    def text(self) -> str:
        return f"{self.width}x{self.height}+{self.x}+{self.y}"


# -- devices ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenICamDevice:
    """One camera Aravis found."""

    device_id: str
    vendor: str
    model: str
    serial: str
    protocol: str  # "GigEVision" or "USB3Vision"
    address: str  # the IP address of a GigE Vision camera; "" for USB
    physical_id: str  # the MAC address or the USB bus path

    @property
    def spec(self) -> str:
        return f"{SPEC_PREFIX}:{self.device_id}"

    def matches(self, wanted: str) -> bool:
        return wanted in (self.device_id, self.serial, self.address, self.physical_id)

    def to_dict(self) -> dict[str, str]:
        return {"spec": self.spec, "device_id": self.device_id, "vendor": self.vendor, "model": self.model,
                "serial": self.serial, "protocol": self.protocol, "address": self.address,
                "physical_id": self.physical_id}


def list_genicam_devices() -> list[GenICamDevice]:
    """The GenICam cameras attached now (GigE Vision discovery takes about a second)."""
    aravis = load_aravis()
    aravis.update_device_list()
    return [
        GenICamDevice(
            device_id=aravis.get_device_id(i) or "",
            vendor=aravis.get_device_vendor(i) or "",
            model=aravis.get_device_model(i) or "",
            serial=aravis.get_device_serial_nbr(i) or "",
            protocol=aravis.get_device_protocol(i) or "",
            address=aravis.get_device_address(i) or "",
            physical_id=aravis.get_device_physical_id(i) or "",
        )
        for i in range(aravis.get_n_devices())
    ]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# -- the source ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenICamMode:
    """What the camera was asked for, or what it reads back."""

    roi: Roi | None = None
    pixel_format: str = ""
    fps: float | None = None
    exposure_us: float | None = None
    gain: float | None = None
    white_balance: tuple[float, float] | None = None  # red, blue ratios to green
    trigger: str = "free-run"

    def text(self) -> str:
        parts = []
        if self.roi:
            parts.append(self.roi.text())
        if self.pixel_format:
            parts.append(self.pixel_format)
        if self.trigger == "software":
            parts.append("software trigger")
        elif self.fps:
            parts.append(f"@ {self.fps:g} fps")
        if self.exposure_us is not None:
            parts.append(f"exposure {self.exposure_us:g} µs")
        if self.gain is not None:
            parts.append(f"gain {self.gain:g}")
        if self.white_balance is not None:
            parts.append(f"white balance R {self.white_balance[0]:g} B {self.white_balance[1]:g}")
        return " ".join(parts)


class GenICamSource(ReconnectingSource):
    """A GenICam camera by stable id (see the module docstring)."""

    def __init__(
        self,
        camera_id: str = "",
        *,
        exposure: float | None = None,
        gain: float | None = None,
        white_balance: tuple[float, float] | list[float] | None = None,
        pixel_format: str = "",
        roi: Roi | str | None = None,
        fps: float | None = None,
        trigger: str = "free-run",
        stall_timeout_s: float = 3.0,
        open_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger is one of {', '.join(TRIGGERS)}; got {trigger!r}")
        if stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {stall_timeout_s}")
        if white_balance is not None and len(white_balance) != 2:
            raise ValueError(f"white_balance is [red, blue] ratios to green; got {white_balance!r}")
        # Each try already spends about 1 s in GigE Vision discovery: waits of at most 1 s between tries
        # keep the recovery after the camera is back near 3 s.
        super().__init__(f"{SPEC_PREFIX}:{camera_id}" if camera_id else SPEC_PREFIX,
                         backoff=backoff or Backoff(first_s=0.25, max_s=1.0))
        self.camera_id = camera_id
        self.requested = GenICamMode(
            roi=Roi.parse(roi) if isinstance(roi, str) and roi.strip() else roi or None,
            pixel_format=pixel_format,
            fps=fps,
            exposure_us=exposure,
            gain=gain,
            white_balance=tuple(float(v) for v in white_balance) if white_balance is not None else None,
            trigger=trigger,
        )
        self.actual: GenICamMode | None = None
        self.device: GenICamDevice | None = None
        self.stall_timeout_s = stall_timeout_s
        self.open_timeout_s = open_timeout_s
        self._aravis: Any = None
        self._camera: Any = None
        self._stream: Any = None
        self._device_gone = False
        self._abandoned: list[tuple[Any, Any]] = []  # sessions of a camera that stopped answering
        self._settings_reported = False
        self._refusals: list[str] = []
        self._pixel_format = ""
        self._next_id = 0
        self.camera_info: CameraInfo | None = None  # as read back at each (re)connect: on every frame

    # -- FrameSource -----------------------------------------------------------------------

    def open(self) -> None:
        if self._is_open:
            return
        self._aravis = load_aravis()
        self._pending = self._connect()
        self._is_open = True
        self.state = "live"
        log.info("opened %s", self.describe())

    def read(self) -> Frame | None:
        frame = self._pending_or_reconnect()
        if frame is not None:
            return frame
        try:
            image = self._grab(self.stall_timeout_s)
        except SourceError as exc:
            self._device_gone = True
            return self._lost(str(exc))
        return self._frame_from(image)

    def close(self) -> None:
        self._disconnect()
        self._release_abandoned()
        self._pending = None
        self._is_open = False
        self.state = "closed"

    def describe(self) -> str:
        return describe_mode(self._title(), self.actual, self.requested, "Aravis")

    # -- ReconnectingSource ----------------------------------------------------------------

    def _title(self) -> str:
        if self.device is not None:
            return f"GenICam {self.device.vendor} {self.device.model} ({self.device.serial or self.device.device_id})"
        return f"GenICam camera {self.camera_id or '(first found)'}"

    def _connect(self) -> np.ndarray:
        aravis = self._aravis
        self.device = self._find_device()
        self._release_abandoned()
        try:
            camera = self._open_camera(self.device)
            self._apply(camera)
            actual = self._read_back(camera)
            stream = camera.create_stream(None, None)
            payload = camera.get_payload()
            for _ in range(STREAM_BUFFERS):
                stream.push_buffer(aravis.Buffer.new_allocate(payload))
            camera.set_acquisition_mode(aravis.AcquisitionMode.CONTINUOUS)
            camera.start_acquisition()
        except Exception as exc:  # GLib.Error: the camera went away or refused the session
            raise SourceError(f"{self._title()} could not be opened: {_message(exc)}") from exc
        self._camera, self._stream, self._device_gone = camera, stream, False
        self.actual = actual
        self.camera_info = self._camera_info(self.device, actual)
        self.nominal_fps = actual.fps if actual.trigger == "free-run" else None
        try:
            first = self._grab(self.open_timeout_s)
        except SourceError:
            self._device_gone = True
            self._disconnect()
            raise
        if not self._settings_reported:
            self._settings_reported = True
            self._report_mismatch()
        return first

    @staticmethod
    def _camera_info(device: GenICamDevice, actual: GenICamMode) -> CameraInfo:
        return CameraInfo(spec=device.spec, model=f"{device.vendor} {device.model}".strip(), serial=device.serial,
                          exposure=actual.exposure_us, exposure_unit="µs" if actual.exposure_us is not None else "",
                          gain=actual.gain)

    def _disconnect(self) -> None:
        camera, stream, self._camera, self._stream = self._camera, self._stream, None, None
        if camera is None:
            return
        if self._device_gone:
            # Releasing a camera that does not answer blocks for its GigE Vision time-outs (about 7.5 s:
            # Aravis says goodbye to the stream and the control channel). It is released once the
            # camera answers again (quickly then), or when the source closes.
            self._abandoned.append((camera, stream))
            return
        try:
            camera.stop_acquisition()
        except Exception as exc:  # noqa: BLE001 - a camera that is gone cannot stop; it is released anyway
            log.debug("%s: stop_acquisition failed: %s", self._title(), _message(exc))

    def _release_abandoned(self) -> None:
        if not self._abandoned:
            return
        started = time.monotonic()
        self._abandoned.clear()
        gc.collect()  # now, on this thread: a cycle collected later could block whichever thread collects it
        log.debug("%s: released the lost camera's session in %.2f s", self._title(), time.monotonic() - started)

    def _frame_from(self, raw: object) -> Frame:
        assert isinstance(raw, np.ndarray)
        frame = Frame(image=raw, timestamp=time.time(), frame_id=self._next_id, source=self.name, camera=self.camera_info)
        self._next_id += 1
        return frame

    # -- internals -------------------------------------------------------------------------

    def _find_device(self) -> GenICamDevice:
        devices = list_genicam_devices()
        if not self.camera_id and devices:
            return devices[0]
        for device in devices:
            if device.matches(self.camera_id):
                return device
        found = ", ".join(d.spec for d in devices) or "none"
        wanted = f"'{self.camera_id}'" if self.camera_id else "at all"
        raise SourceError(
            f"No GenICam camera {wanted} found (found: {found}): check that it is plugged in and powered, "
            "and for GigE Vision that it is on this computer's subnet; `station cameras` lists the attached ones"
        )

    def _open_camera(self, device: GenICamDevice) -> Any:
        aravis = self._aravis
        if device.protocol == "GigEVision" and _is_loopback(device.address):
            # Aravis credits a camera on the loopback address to the first interface that heard its
            # discovery reply; the stream would then listen there and receive nothing.
            from gi.repository import Gio

            local = Gio.InetAddress.new_from_string(device.address)
            return aravis.Camera.new_with_device(aravis.GvDevice.new(local, local))
        return aravis.Camera.new(device.device_id)

    def _grab(self, timeout_s: float) -> np.ndarray:
        """The newest complete frame within ``timeout_s`` (older ones queued behind it are dropped)."""
        # self._stream, not a local: a traceback kept by the caller must not hold the camera's session
        if self.requested.trigger == "software":
            try:
                self._camera.software_trigger()
            except Exception as exc:  # noqa: BLE001
                raise SourceError(f"the software trigger failed ({_message(exc)})") from exc
        deadline = time.monotonic() + timeout_s
        incomplete = 0
        while True:
            remaining_us = int(max(deadline - time.monotonic(), 0) * 1e6)
            buffer = self._stream.timeout_pop_buffer(max(remaining_us, 1))
            if buffer is None:
                extra = f" ({incomplete} incomplete)" if incomplete else ""
                raise SourceError(f"no frame for {timeout_s:g} s{extra}")
            if buffer.get_status() != self._aravis.BufferStatus.SUCCESS:
                incomplete += 1
                self._stream.push_buffer(buffer)
                continue
            newer = self._stream.try_pop_buffer()
            while newer is not None:
                if newer.get_status() == self._aravis.BufferStatus.SUCCESS:
                    self._stream.push_buffer(buffer)
                    buffer = newer
                else:
                    self._stream.push_buffer(newer)
                newer = self._stream.try_pop_buffer()
            try:
                return genicam_to_rgb(
                    buffer.get_data(), buffer.get_image_width(), buffer.get_image_height(), self._pixel_format
                )
            finally:
                self._stream.push_buffer(buffer)

    def _apply(self, camera: Any) -> None:
        """Send the requested settings; what the camera refuses is reported (once), never fatal."""
        aravis, wanted = self._aravis, self.requested
        refusals: list[str] = []

        def attempt(what: str, action: Any) -> None:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - GLib.Error from the camera
                refusals.append(f"refused {what} ({_message(exc)})")

        if wanted.pixel_format:
            available = list(camera.dup_available_pixel_formats_as_strings() or [])
            if wanted.pixel_format in available:
                attempt(f"pixel format {wanted.pixel_format}", lambda: camera.set_pixel_format_from_string(wanted.pixel_format))
            else:
                refusals.append(f"has no pixel format {wanted.pixel_format} (it offers {', '.join(available)})")
        region = camera.get_region()
        # the offsets to 0 first: the camera bounds the width by what is left right of OffsetX
        attempt("offsets 0, 0", lambda: camera.set_region(0, 0, region.width, region.height))
        roi = wanted.roi
        if roi is None:
            roi = Roi(camera.get_width_bounds().max, camera.get_height_bounds().max)
        fitted = self._fit_roi(camera, roi)
        if wanted.roi is not None and fitted != wanted.roi:
            refusals.append(f"cannot take the region {wanted.roi.text()} (sensor {self._sensor_text(camera)}); using {fitted.text()}")
        attempt(f"region {fitted.text()}", lambda: camera.set_region(fitted.x, fitted.y, fitted.width, fitted.height))
        if wanted.trigger == "software":
            if camera.is_software_trigger_supported():
                attempt("the software trigger", lambda: camera.set_trigger("Software"))
            else:
                refusals.append("has no software trigger")
        else:
            attempt("free-running acquisition", camera.clear_triggers)
            if wanted.fps and camera.is_frame_rate_available():
                fps = self._clamped("frame rate", wanted.fps, camera.get_frame_rate_bounds(), "fps", refusals)
                attempt(f"frame rate {fps:g} fps", lambda: camera.set_frame_rate(fps))
        if wanted.exposure_us is not None:
            if camera.is_exposure_auto_available():
                attempt("manual exposure", lambda: camera.set_exposure_time_auto(aravis.Auto.OFF))
            exposure = self._clamped("exposure", wanted.exposure_us, camera.get_exposure_time_bounds(), "µs", refusals)
            attempt(f"exposure {exposure:g} µs", lambda: camera.set_exposure_time(exposure))
        if wanted.gain is not None:
            if camera.is_gain_available():
                if camera.is_gain_auto_available():
                    attempt("manual gain", lambda: camera.set_gain_auto(aravis.Auto.OFF))
                gain = self._clamped("gain", wanted.gain, camera.get_gain_bounds(), "", refusals)
                attempt(f"gain {gain:g}", lambda: camera.set_gain(gain))
            else:
                refusals.append("has no gain control")
        if wanted.white_balance is not None:
            if _has_white_balance(camera):
                if camera.get_device().is_feature_available("BalanceWhiteAuto"):
                    attempt("manual white balance", lambda: camera.set_string("BalanceWhiteAuto", "Off"))
                for channel, ratio in zip(("Red", "Blue"), wanted.white_balance):
                    attempt(f"white balance {channel} {ratio:g}", lambda c=channel, r=ratio: _set_balance(camera, c, r))
            else:
                refusals.append("has no white balance (BalanceRatio)")
        self._refusals = refusals

    def _read_back(self, camera: Any) -> GenICamMode:
        region = camera.get_region()
        self._pixel_format = camera.get_pixel_format_as_string()
        if self._pixel_format not in SUPPORTED_PIXEL_FORMATS:
            offered = list(camera.dup_available_pixel_formats_as_strings() or [])
            usable = [f for f in offered if f in SUPPORTED_PIXEL_FORMATS]
            raise SourceError(
                f"pixel format {self._pixel_format} is not supported; set pixel_format to one of "
                f"{', '.join(usable) or ', '.join(SUPPORTED_PIXEL_FORMATS)}"
            )
        trigger_on = _feature_string(camera, "TriggerMode") == "On" and _feature_string(camera, "TriggerSource") == "Software"
        return GenICamMode(
            roi=Roi(region.width, region.height, region.x, region.y),
            pixel_format=self._pixel_format,
            fps=camera.get_frame_rate() if camera.is_frame_rate_available() else None,
            exposure_us=camera.get_exposure_time() if camera.is_exposure_time_available() else None,
            gain=camera.get_gain() if camera.is_gain_available() else None,
            white_balance=(_get_balance(camera, "Red"), _get_balance(camera, "Blue")) if _has_white_balance(camera) else None,
            trigger="software" if trigger_on else "free-run",
        )

    def _report_mismatch(self) -> None:
        wanted, actual, label = self.requested, self.actual, self._title()
        assert actual is not None
        for refusal in self._refusals:
            self._report(f"{label} {refusal}")
        differences = []
        if wanted.roi is not None and actual.roi != wanted.roi:
            differences.append(f"region {actual.roi.text() if actual.roi else '?'} instead of {wanted.roi.text()}")
        if wanted.pixel_format and actual.pixel_format != wanted.pixel_format:
            differences.append(f"pixel format {actual.pixel_format} instead of {wanted.pixel_format}")
        if wanted.trigger != actual.trigger:
            differences.append(f"trigger {actual.trigger} instead of {wanted.trigger}")
        if wanted.trigger == "free-run" and wanted.fps and not _close(actual.fps, wanted.fps):
            differences.append(f"{actual.fps} fps instead of {wanted.fps:g}")
        if wanted.exposure_us is not None and not _close(actual.exposure_us, wanted.exposure_us):
            differences.append(f"exposure {actual.exposure_us} µs instead of {wanted.exposure_us:g}")
        if wanted.gain is not None and not _close(actual.gain, wanted.gain):
            differences.append(f"gain {actual.gain} instead of {wanted.gain:g}")
        if wanted.white_balance is not None and actual.white_balance is not None and not all(
            map(_close, actual.white_balance, wanted.white_balance)
        ):
            differences.append(f"white balance {actual.white_balance} instead of {wanted.white_balance}")
        for difference in differences:
            self._report(f"{label} reads back {difference}")

    def _fit_roi(self, camera: Any, roi: Roi) -> Roi:
        sensor_width, sensor_height = camera.get_width_bounds().max, camera.get_height_bounds().max
        width = min(max(roi.width, camera.get_width_bounds().min), sensor_width)
        height = min(max(roi.height, camera.get_height_bounds().min), sensor_height)
        return Roi(width, height, min(roi.x, sensor_width - width), min(roi.y, sensor_height - height))

    @staticmethod
    def _sensor_text(camera: Any) -> str:
        return f"{camera.get_width_bounds().max}x{camera.get_height_bounds().max}"

    @staticmethod
    def _clamped(what: str, value: float, bounds: Any, unit: str, refusals: list[str]) -> float:
        clamped = min(max(value, bounds.min), bounds.max)
        if clamped != value:
            suffix = f" {unit}" if unit else ""
            refusals.append(
                f"cannot take {what} {value:g}{suffix} (range {bounds.min:g} to {bounds.max:g}{suffix}); using {clamped:g}"
            )
        return clamped


def _has_white_balance(camera: Any) -> bool:
    device = camera.get_device()
    return device.is_feature_available("BalanceRatioSelector") and (
        device.is_feature_available("BalanceRatio") or device.is_feature_available("BalanceRatioAbs")
    )


def _balance_feature(camera: Any) -> str:
    return "BalanceRatio" if camera.get_device().is_feature_available("BalanceRatio") else "BalanceRatioAbs"


def _set_balance(camera: Any, channel: str, ratio: float) -> None:
    camera.set_string("BalanceRatioSelector", channel)
    camera.set_float(_balance_feature(camera), ratio)


def _get_balance(camera: Any, channel: str) -> float:
    camera.set_string("BalanceRatioSelector", channel)
    return camera.get_float(_balance_feature(camera))


def _feature_string(camera: Any, name: str) -> str:
    try:
        return camera.get_string(name) if camera.get_device().is_feature_available(name) else ""
    except Exception:  # noqa: BLE001
        return ""


def _close(actual: float | None, wanted: float) -> bool:
    return actual is not None and abs(actual - wanted) <= max(1e-6, 1e-3 * abs(wanted))


def _message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc)
