"""The Windows version resource of station.exe and station-gui.exe (Properties > Details), as the
text file PyInstaller's ``EXE(version=...)`` reads, made from ``station.__version__`` by build.spec."""

from __future__ import annotations

import re

COMPANY = "station"
PRODUCT = "IC Inspection Station"
COPYRIGHT = "station contributors"


def version_numbers(version: str) -> tuple[int, int, int, int]:
    """``0.1.0`` -> (0, 1, 0, 0); a pre-release or development build its release's numbers
    (``0.2.0rc1``, ``0.2.0.dev3`` -> (0, 2, 0, 0))."""
    release = re.match(r"\d+(\.\d+)*", version)
    if release is None:
        raise ValueError(f"version {version!r} does not start with a number")
    numbers = [int(n) for n in release.group().split(".")]
    return tuple((numbers + [0, 0, 0, 0])[:4])  # type: ignore[return-value]


def version_file_text(version: str, *, file_description: str, original_filename: str) -> str:
    numbers = version_numbers(version)
    strings = {
        "CompanyName": COMPANY,
        "FileDescription": file_description,
        "FileVersion": version,
        "InternalName": original_filename.removesuffix(".exe"),
        "LegalCopyright": COPYRIGHT,
        "OriginalFilename": original_filename,
        "ProductName": PRODUCT,
        "ProductVersion": version,
    }
    string_structs = ",\n".join(f"          StringStruct({k!r}, {v!r})" for k, v in strings.items())
    return f"""# UTF-8
VSVersionInfo(
  ffi=FixedFileInfo(
    filevers={numbers},
    prodvers={numbers},
    mask=0x3f,
    flags=0x0,
    OS=0x40004,
    fileType=0x1,
    subtype=0x0,
    date=(0, 0)
  ),
  kids=[
    StringFileInfo([
      StringTable('040904B0', [
{string_structs}
      ])
    ]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""
