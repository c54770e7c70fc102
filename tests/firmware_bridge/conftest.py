"""Keys and images for the firmware tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_bridge.signing import generate_keypair, load_private_key, load_public_key


@dataclass
class Keys:
    private: Ed25519PrivateKey
    public: Ed25519PublicKey
    key_id: str
    private_path: Path
    public_path: Path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    priv, pub = tmp_path / "keys" / "release.pem", tmp_path / "keys" / "release.pub.pem"
    kid = generate_keypair(priv, pub)
    return Keys(load_private_key(priv), load_public_key(pub), kid, priv, pub)


@pytest.fixture
def other_keys(tmp_path: Path) -> Keys:
    priv, pub = tmp_path / "other" / "k.pem", tmp_path / "other" / "k.pub.pem"
    kid = generate_keypair(priv, pub)
    return Keys(load_private_key(priv), load_public_key(pub), kid, priv, pub)


def image_of(size: int, seed: int = 7) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))
