"""``AuditSetup``: where this station's records go and under which station ID, decided once.

``station.app`` reads it from the settings at start-up and hands it to every part of the window
that opens the log (the audit, users and batch workers, the audit view, the sign-out at exit), so
all of them write to the same place under the same ID, whatever the settings files say later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from station.audit.backend import configured_location
from station.audit.entry import AuditError
from station.audit.log import AuditLog


@dataclass(frozen=True)
class AuditSetup:
    """``location`` a SQLite file or a ``postgresql://`` URL; ``problem`` says why there is none
    (a malformed ``audit_url``, a data folder that cannot be made): opening then raises
    ``AuditError`` with it, and the window shows that instead of dying at start-up."""

    location: Path | str | None
    station_id: str
    archive_dir: Path | None = None
    problem: str = ""

    @classmethod
    def from_settings(cls, settings) -> AuditSetup:
        """The settings' log (``STATION_AUDIT_URL`` first), station ID and archive folder."""
        from station import paths

        try:
            location = configured_location(settings.audit_url)
            return cls(location, settings.station_id, paths.archive_dir())
        except AuditError as exc:
            return cls(None, settings.station_id, problem=str(exc))
        except OSError as exc:
            return cls(None, settings.station_id, problem=f"cannot create the station's data folder: {exc}")

    def open(self, *, readonly: bool = False) -> AuditLog:
        """A new ``AuditLog`` on this place (connections open lazily, on first use)."""
        if self.location is None:
            raise AuditError(self.problem or "no audit log is configured")
        return AuditLog(self.location, station_id=self.station_id, archive_dir=self.archive_dir, readonly=readonly)

    def describe(self) -> str:
        return self.open().describe_location() if self.location is not None else f"no audit log ({self.problem})"
