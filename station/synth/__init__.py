"""Synthetic IC package images: three packaging materials, optional micro defects with boxes.

``render_package(seed, material=None, defects=False, size=(480, 640)) -> SynthSample`` is the
whole API; ``station synth`` (``station.synth.cli``) writes datasets and contact sheets.
"""

from station.synth.defects import DEFECT_CLASSES
from station.synth.packages import MATERIALS, PACKAGE_TYPES
from station.synth.render import SynthSample, render_package

__all__ = ["DEFECT_CLASSES", "MATERIALS", "PACKAGE_TYPES", "SynthSample", "render_package"]
