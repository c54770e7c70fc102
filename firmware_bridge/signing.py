"""Release engineering: Ed25519 signing keys and signed manifests (`lamplighter firmware ...`).

Private keys are written PKCS#8 PEM with mode 0600 (created so, never widened afterwards),
optionally encrypted with a passphrase; public keys as SubjectPublicKeyInfo PEM, to be given to the
controller (`[firmware] trusted_keys`) and to device makers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from drivers.firmware import Manifest, SignedManifest, key_id


class SigningKeyError(ValueError):
    """A key file that cannot be used (missing, wrong passphrase, not Ed25519)."""


def generate_keypair(private_path: Path, public_path: Path, passphrase: bytes | None = None) -> str:
    """Write a new key pair; return its key id. Refuses to overwrite an existing private key."""
    key = Ed25519PrivateKey.generate()
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = key.public_key()
    public_path.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return key_id(public)


def load_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=passphrase)
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: no such key file") from None
    except TypeError:
        raise SigningKeyError(f"{path}: the key is encrypted: give its passphrase") from None
    except ValueError as exc:
        raise SigningKeyError(
            f"{path}: cannot load the key (wrong passphrase, or not a PEM key): {exc}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: no such key file") from None
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an Ed25519 public key")
    return key


def trusted_keys(paths: list[Path]) -> dict[str, Ed25519PublicKey]:
    keys = [load_public_key(p) for p in paths]
    return {key_id(k): k for k in keys}


def sign_image(
    image: bytes,
    key: Ed25519PrivateKey,
    *,
    model: str,
    version: str,
    min_hw_rev: int = 0,
    notes: str = "",
) -> SignedManifest:
    manifest = Manifest(
        model=model,
        version=version,
        size=len(image),
        sha256=hashlib.sha256(image).hexdigest(),
        min_hw_rev=min_hw_rev,
        notes=notes,
        key_id=key_id(key.public_key()),
        created_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    signature = base64.b64encode(key.sign(manifest.canonical())).decode()
    return SignedManifest(manifest=manifest, signature=signature)
