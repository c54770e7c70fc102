"""Secrets the API accepts: API keys, password hashes and short-lived access tokens.

- API keys look like `ll_<key id>_<secret>`. Only SHA-256 of the secret is stored: the secret is 32
  random bytes, so a fast hash is enough (no dictionary to attack), and checking a key costs
  microseconds on every request. The key id, public, finds the row.
- Passwords are people's, so guessable: they get scrypt (stdlib, memory-hard), salted, with the
  parameters stored beside the hash so they can be raised later.
- Access tokens are JWTs (HS256, PyJWT) carrying the user, role and expiry, signed with a secret
  kept in the registry database so every controller instance accepts the others' tokens.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

import jwt

Role = Literal["viewer", "operator", "engineer", "technician", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
KEY_PREFIX = "ll_"
_KEY = re.compile(r"^ll_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
TOKEN_ALGORITHM = "HS256"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret_hash: str
    plaintext: str  # shown once, never stored


def new_api_key() -> NewKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, hash_key_secret(secret), f"{KEY_PREFIX}{key_id}_{secret}")


def split_api_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _KEY.match(presented)
    return (match.group(1), match.group(2)) if match else None


def hash_key_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key_secret(secret), stored_hash)


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` (base64); slow on purpose (~50 ms): call it off the event loop."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@functools.cache
def dummy_password_hash() -> str:
    """Checked against when the user does not exist, so a wrong name takes as long as a wrong
    password. Made on first use (in the thread that checks), not at import: ~50 ms of each start."""
    return hash_password(secrets.token_urlsafe(16))


def verify_password_or_dummy(password: str, stored: str | None) -> bool:
    """`verify_password`, against the dummy hash when there is no user (then always False)."""
    if stored is None:
        verify_password(password, dummy_password_hash())
        return False
    return verify_password(password, stored)


@dataclass(frozen=True)
class TokenClaims:
    username: str
    role: Role
    issued_at: datetime
    expires_at: datetime


class InvalidToken(ValueError):
    """Expired, forged or malformed; the message says which, for the 401 answer."""


def issue_token(username: str, role: Role, secret: str, ttl: timedelta, now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    # `iat` keeps its microseconds (RFC 7519 allows a fractional NumericDate): a password or role
    # changed in the same second as a login must still end that session.
    claims = {
        "sub": username,
        "role": role,
        "iat": issued.timestamp(),
        "exp": int((issued + ttl).timestamp()),
        "typ": "access",
    }
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def read_token(token: str, secret: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],  # never "none", never what the token itself asks for
            options={"require": ["sub", "role", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("the token has expired: log in again") from exc
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("the token's signature does not match") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token is not valid: {exc}") from exc
    role = claims.get("role")
    if role not in ROLES or claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        raise InvalidToken("the token is not an access token of this controller")
    return TokenClaims(
        username=claims["sub"],
        role=role,
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )


def new_token_secret() -> str:
    return secrets.token_urlsafe(48)
