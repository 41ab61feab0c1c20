"""Password hashing with argon2id (``argon2-cffi``); a password is never stored or logged in clear.

``PASSWORD_HASHER`` uses argon2-cffi's defaults (RFC 9106's low-memory profile: 64 MiB,
3 passes). Tests swap in a cheaper one; the stored hash names its own parameters, so a hash
made with either verifies with either.
"""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PASSWORD_HASHER = PasswordHasher()
MIN_PASSWORD_LENGTH = 8


def check_new_password(password: str) -> None:
    """Refuse a password too short to be one (ValueError, which never echoes the password)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise ValueError("a password must not begin or end with a space")


def hash_password(password: str) -> str:
    return PASSWORD_HASHER.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def credential_digest(password_hash: str) -> str:
    """The sha256 of a stored argon2 hash: what the audit log records instead of the hash itself."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()
