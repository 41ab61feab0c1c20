"""The station's signing key and the heads it has signed.

Each station holds one Ed25519 key (``cryptography``), created at first use in its own file
``<config>/keys/station-ed25519.pem`` with owner-only permissions (0600), apart from the data
folder that holds the log and the archive, so a copy of the data folder carries no key. The
public key goes on the log in a ``STATION_KEY`` entry; every entry carries a signature over its
head (see ``head_message``), so anyone can check a log without the private key.

A chain of signed heads still cannot show, by itself, that newer entries were cut off: every
prefix of a signed log is a signed log. Three things outside the cut can (``station.audit.chain``
says which is checked where): SQLite's ``sqlite_sequence``, a head written down elsewhere
(``verify --expect-head``), and this station's own record of the last head it signed,
``<config>/keys/heads.json`` (``HeadAnchors``), kept beside the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.audit.entry import AuditWriteError

KEY_FILE = "station-ed25519.pem"
ANCHOR_FILE = "heads.json"
ALGORITHM = "Ed25519"


def keys_dir() -> Path:
    from station import paths

    return paths.config_dir() / "keys"


def head_message(entry_id: int, head_hash: str) -> bytes:
    """What an entry's signature signs: its id (so the count of entries up to it) and its hash."""
    return f"station-audit-head:{entry_id}:{head_hash}".encode("ascii")


def fingerprint(public_key_hex: str) -> str:
    """A short name for a public key, to compare with one written down at installation."""
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:16]


def check_signature(public_key_hex: str, entry_id: int, head_hash: str, signature_hex: str | None) -> bool:
    if not signature_hex:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), head_message(entry_id, head_hash))
    except (ValueError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class StationKey:
    private_key: Ed25519PrivateKey
    path: Path

    @property
    def public_key_hex(self) -> str:
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw.hex()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key_hex)

    def sign_head(self, entry_id: int, head_hash: str) -> str:
        return self.private_key.sign(head_message(entry_id, head_hash)).hex()


_cache: dict[Path, StationKey] = {}
_cache_lock = threading.Lock()


def load_station_key(folder: Path | None = None) -> StationKey:
    """This station's key, created on first use; ``AuditWriteError`` when it cannot be read or made."""
    folder = Path(folder) if folder is not None else keys_dir()
    path = folder / KEY_FILE
    with _cache_lock:
        cached = _cache.get(path)
        if cached is not None:
            return cached
        try:
            if not path.is_file():
                _create_key_file(path)
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise AuditWriteError(f"the station's signing key {path} cannot be read or created: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditWriteError(f"the station's signing key {path} is not an Ed25519 key")
        _cache[path] = StationKey(key, path)
        return _cache[path]


def _create_key_file(path: Path) -> None:
    """Write a new key without ever replacing one another process wrote meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process made the key first: theirs is kept
    except FileExistsError:
        pass
    except OSError:  # no hard links (some Windows and network file systems)
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Anchor:
    location: str
    first_hash: str  # names the chain, so a moved log is still recognised
    entry_id: int
    head_hash: str
    time_utc: str


class HeadAnchors:
    """The last head this station signed on each log it wrote, in ``heads.json`` beside the key.

    One anchor per (location, chain): an update never moves an anchor backwards, so two processes
    racing leave the higher head (or, at worst, one entry lower), and every anchor names a
    committed entry. A different chain at a location this station wrote is kept as a second
    anchor, so a log replaced wholesale stays evident.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (Path(folder) if folder is not None else keys_dir()) / ANCHOR_FILE

    def read(self) -> list[Anchor]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [Anchor(**item) for item in data.get("anchors", [])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"the station's head record {self.path} is unreadable: {exc}") from exc

    def for_log(self, location: str, first_hash: str | None) -> list[Anchor]:
        """The anchors for the log at ``location``; for a log this station never wrote there (a moved
        data folder), those of the same chain written elsewhere."""
        try:
            anchors = self.read()
        except ValueError:
            return []
        here = [a for a in anchors if a.location == location]
        return here or [a for a in anchors if first_hash and a.first_hash == first_hash]

    def record(self, location: str, first_hash: str, entry_id: int, head_hash: str, time_utc: str) -> None:
        try:
            anchors = self.read()
        except ValueError:
            anchors = []
        same = lambda a: a.location == location and a.first_hash == first_hash  # noqa: E731
        previous = next((a for a in anchors if same(a)), None)
        if previous is not None and previous.entry_id >= entry_id:
            return
        kept = [a for a in anchors if not same(a)]
        kept.append(Anchor(location, first_hash, entry_id, head_hash, time_utc))
        text = json.dumps({"anchors": [a.__dict__ for a in kept]}, indent=1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{ANCHOR_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
