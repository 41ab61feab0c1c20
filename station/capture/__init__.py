"""Frame sources (no Qt): cameras and streams, video files, image folders, the simulated microscope.

Every source has the interface of :class:`~station.capture.base.FrameSource`; build one from
what the operator typed with :func:`~station.capture.sources.open_source`.
"""

from station.capture.base import Frame, FrameReadError, FrameSource, SourceError, SourceReconnecting
from station.capture.camera import CameraSource
from station.capture.folder import ImageFolderSource
from station.capture.images import IMAGE_SUFFIXES, ImageReadError, read_image, to_rgb_uint8
from station.capture.simulated import SimulatedMicroscope
from station.capture.sources import open_source
from station.capture.video import VideoFileSource

__all__ = [
    "IMAGE_SUFFIXES",
    "CameraSource",
    "Frame",
    "FrameReadError",
    "FrameSource",
    "ImageFolderSource",
    "ImageReadError",
    "SimulatedMicroscope",
    "SourceError",
    "SourceReconnecting",
    "VideoFileSource",
    "open_source",
    "read_image",
    "to_rgb_uint8",
]
