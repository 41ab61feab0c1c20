"""The small interface every audit storage offers (see ``station.audit.backend`` for its use)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from station.audit import db

# "module:attribute" of each SchemaPart that init-server creates (missing modules are skipped)
SERVER_SCHEMA_PARTS = ["station.audit.pg:AUDIT_SCHEMA", "station.users.credentials:SERVER_SCHEMA"]


@dataclass(frozen=True)
class SchemaPart:
    """Tables one module keeps on the lab's PostgreSQL server.

    ``postgresql``: statements run by init-server as the owner, in the schema ``station``;
    ``station_grants``: the privileges the stations' role ``{role}`` gets (format placeholder).
    """

    name: str
    postgresql: Sequence[str]
    station_grants: Sequence[str] = ()


class Transaction:
    """One open transaction: ``execute(sql, params) -> list of row tuples``."""

    kind = ""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
        """Rows one at a time (a long log is not held in memory)."""
        yield from self.execute(sql, params)


class Backend:
    kind = ""
    location = ""  # for people and the station's head record: a resolved path, or a URL without password

    def transaction(self, lock: str | None = None):  # -> ContextManager[Transaction]
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def schema_problems(self) -> list[str]:
        raise NotImplementedError

    def select_columns(self) -> str:
        """``db.COLUMNS`` as this database can select them."""
        return ", ".join(db.COLUMNS)

    def sequence_max(self, tx: Transaction) -> int | None:
        """The highest entry id the database remembers having held (SQLite's sqlite_sequence)."""
        return None


_PLACEHOLDER = re.compile(r"\?")


def to_pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
