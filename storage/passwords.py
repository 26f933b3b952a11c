"""Password hashing with the standard library's scrypt.

Why stdlib `hashlib.scrypt`: it is a memory-hard key derivation function (guessing costs memory as
well as time, which blunts GPU and ASIC attacks), it ships with every CPython built against OpenSSL,
so MedLite needs no extra dependency for it. Each hash carries its own salt and cost parameters,
so the costs can be raised later without breaking stored hashes.

Stored format: ``scrypt$n$r$p$salt_b64$hash_b64``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# One of OWASP's recommended scrypt settings (N=2^14, r=8, p=5): 16 MiB of memory per hash.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 5
_SALT_BYTES = 16
_KEY_BYTES = 32
_SCHEME = "scrypt"


def _derive(password: str, salt: bytes, n: int, r: int, p: int, key_bytes: int) -> bytes:
    # scrypt needs 128 * n * r bytes; OpenSSL refuses anything above `maxmem`, so allow twice that.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r, dklen=key_bytes
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """Hash `password` with a fresh random salt; the result is safe to store."""
    if not isinstance(password, str) or not password:
        raise ValueError("password must be a non-empty string")
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _KEY_BYTES)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, password_hash: str) -> bool:
    """True when `password` matches `password_hash`; compares in constant time."""
    parts = password_hash.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise ValueError("password_hash is not in the 'scrypt$n$r$p$salt$hash' format")
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except ValueError as error:
        raise ValueError(f"password_hash is malformed: {error}") from error
    candidate = _derive(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(candidate, expected)
