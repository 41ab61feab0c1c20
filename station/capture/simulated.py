"""The simulated microscope: an endless live stream of synthetic IC packages.

A new package (``station.synth.render_package``) slides under the objective every
``seconds_per_package``; between changes each frame gets a little camera shake, illuminator
flicker and fresh sensor noise, so that it looks and behaves like a live camera (nothing in
two successive frames is identical). Per-frame work is a sub-pixel warp and two saturating
adds on pre-computed noise, so the stream keeps its frame rate on a small CPU; rendering a
package (about 25 ms at 640x480) happens once per package.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from station.capture.base import CameraInfo, Frame, FrameSource, Pacer
from station.synth import MATERIALS, SynthSample, render_package

log = logging.getLogger(__name__)

_NOISE_FIELDS = 3
_NOISE_MARGIN = 16  # px of extra noise around the frame, so random crops differ


SIMULATED_CAMERA = CameraInfo(spec="demo", model="simulated microscope")


class SimulatedMicroscope(FrameSource):
    """Synthetic packages at ``fps``; ``seed`` makes the package sequence reproducible.

    ``current_sample`` is the ground truth of the package on screen (material, package type,
    defect boxes), accurate to the camera shake of ``shake_px``.
    """

    is_live = True

    def __init__(
        self,
        *,
        fps: float = 30.0,
        width: int = 640,
        height: int = 480,
        seconds_per_package: float = 4.0,
        defects: bool = True,
        seed: int | None = None,
        paced: bool = True,
        shake_px: float = 1.2,
        noise_sigma: float = 2.0,
    ) -> None:
        super().__init__("demo")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        if width < 64 or height < 64:
            raise ValueError(f"simulated image size {width}x{height} too small (at least 64x64)")
        self.nominal_fps = float(fps)
        self.size = (int(height), int(width))
        self.seconds_per_package = seconds_per_package
        self.defects = defects
        self.seed = seed
        self.paced = paced
        self.shake_px = shake_px
        self.noise_sigma = noise_sigma
        self.packages_shown = 0
        self.current_sample: SynthSample | None = None
        self._rng: np.random.Generator | None = None
        self._noise: list[np.ndarray] = []
        self._pacer: Pacer | None = None
        self._package_started = 0.0
        self._shake = np.zeros(2)
        self._next_id = 0

    def open(self) -> None:
        if self._is_open:
            return
        self._rng = np.random.default_rng(self.seed)
        height, width = self.size
        self._noise = [
            np.rint(self._rng.normal(0.0, self.noise_sigma, (height + _NOISE_MARGIN, width + _NOISE_MARGIN, 3)))
            .clip(-127, 127)
            .astype(np.int16)
            for _ in range(_NOISE_FIELDS)
        ]
        self._next_package()
        self._pacer = Pacer(self.nominal_fps) if self.paced else None
        self._is_open = True
        log.info("opened %s", self.describe())

    def read(self) -> Frame:
        self._require_open()
        if time.monotonic() - self._package_started >= self.seconds_per_package:
            self._next_package()
        assert self.current_sample is not None
        image = self._live_view(self.current_sample.image)
        if self._pacer is not None:
            self._pacer.wait()
        frame = Frame(image=image, timestamp=time.time(), frame_id=self._next_id, source=self.name, camera=SIMULATED_CAMERA)
        self._next_id += 1
        return frame

    def close(self) -> None:
        self._noise = []
        self._is_open = False

    def describe(self) -> str:
        height, width = self.size
        every = f"new package every {self.seconds_per_package:g} s"
        return f"Simulated microscope {width}x{height} @ {self.nominal_fps:g} fps, {every}"

    # -- internals -----------------------------------------------------------------------

    def _next_package(self) -> None:
        assert self._rng is not None
        seed = int(self._rng.integers(0, 2**31 - 1))
        material = MATERIALS[int(self._rng.integers(len(MATERIALS)))]
        self.current_sample = render_package(seed, material=material, defects=self.defects, size=self.size)
        self.packages_shown += 1
        self._package_started = time.monotonic()
        self._shake = np.zeros(2)

    def _live_view(self, still: np.ndarray) -> np.ndarray:
        assert self._rng is not None
        rng = self._rng
        height, width = self.size
        # Shake: a damped random walk, so the picture trembles instead of jumping.
        step = rng.normal(0.0, self.shake_px * 0.5, 2)
        self._shake = np.clip(self._shake * 0.8 + step, -2 * self.shake_px, 2 * self.shake_px)
        zoom = 1.0 + rng.normal(0.0, 0.002)  # focus breathing
        matrix = np.array([[zoom, 0.0, self._shake[0]], [0.0, zoom, self._shake[1]]], np.float32)
        matrix[:, 2] += (1.0 - zoom) * np.array([width / 2, height / 2], np.float32)  # about the centre
        image = cv2.warpAffine(still, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        image = cv2.convertScaleAbs(image, alpha=1.0 + rng.normal(0.0, 0.01))  # illuminator flicker
        field = self._noise[int(rng.integers(len(self._noise)))]
        dy, dx = rng.integers(0, _NOISE_MARGIN + 1, 2)
        return cv2.add(image, field[dy : dy + height, dx : dx + width], dtype=cv2.CV_8U)
