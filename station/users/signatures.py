"""Electronic signatures (21 CFR 11.50): who signed, in which role, what it means, and when."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from station.users.roles import Role


@dataclass(frozen=True)
class Signature:
    """A signature given with the signer's password at that moment; stored in the record's
    ``details["signature"]`` (so it is hashed into the chain with the act it signs)."""

    signer_id: str
    name: str
    role: Role
    meaning: str  # "override approved", "release approved", ...
    time_utc: str  # ISO 8601, when the password was checked

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["role"] = self.role.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls(
            signer_id=str(data["signer_id"]),
            name=str(data["name"]),
            role=Role.parse(data["role"]),
            meaning=str(data["meaning"]),
            time_utc=str(data["time_utc"]),
        )

    def describe(self) -> str:
        return f"{self.meaning} by {self.name} ({self.signer_id}, {self.role.value}) at {self.time_utc}"
