"""Signed manifests: every tampering is refused, with the reason."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from drivers.firmware import FirmwareRejected, SignedManifest, check_image, check_manifest
from firmware_bridge.signing import SigningKeyError, generate_keypair, load_private_key, sign_image
from tests.firmware_bridge.conftest import Keys, image_of


def test_private_keys_are_private_and_can_be_passphrase_encrypted(tmp_path: Path) -> None:
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    generate_keypair(priv, pub, passphrase=b"correct horse")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"ENCRYPTED" in priv.read_bytes()
    load_private_key(priv, b"correct horse")
    with pytest.raises(SigningKeyError, match="encrypted: give its passphrase"):
        load_private_key(priv)
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        load_private_key(priv, b"wrong")
    with pytest.raises(FileExistsError):
        generate_keypair(priv, pub)  # never overwrite a private key


def test_a_signed_image_passes_every_check(keys: Keys) -> None:
    image = image_of(10_000)
    signed = sign_image(
        image, keys.private, model="lamp_lcu", version="1.5.0", min_hw_rev=2, notes="dimming fix"
    )
    trusted = {keys.key_id: keys.public}
    m = check_manifest(signed, trusted, model="lamp_lcu", hw_rev=2, current_version="1.4.9")
    check_image(image, m)
    again = SignedManifest.model_validate_json(signed.to_json())
    assert check_manifest(again, trusted) == m


def reason(fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(FirmwareRejected) as exc:
        fn(*args, **kw)  # type: ignore[operator]
    return exc.value.reason


def test_each_tampering_is_refused_with_its_reason(keys: Keys, other_keys: Keys) -> None:
    image = image_of(4096)
    signed = sign_image(image, keys.private, model="lamp_lcu", version="1.5.0", min_hw_rev=2)
    trusted = {keys.key_id: keys.public}
    unsigned = SignedManifest(manifest=signed.manifest, signature="")
    assert reason(check_manifest, unsigned, trusted) == "unsigned"
    foreign = sign_image(image, other_keys.private, model="lamp_lcu", version="1.5.0")
    assert reason(check_manifest, foreign, trusted) == "unknown_key"
    # a manifest edited after signing (a bigger version, say) no longer matches its signature
    edited = SignedManifest(
        manifest=signed.manifest.model_copy(update={"version": "9.9.9"}), signature=signed.signature
    )
    assert reason(check_manifest, edited, trusted) == "bad_signature"
    forged = SignedManifest(
        manifest=signed.manifest, signature=base64.b64encode(other_keys.private.sign(b"x")).decode()
    )
    assert reason(check_manifest, forged, trusted) == "bad_signature"
    assert reason(check_manifest, signed, trusted, model="env_sensor") == "wrong_model"
    assert reason(check_manifest, signed, trusted, hw_rev=1) == "hardware_too_old"
    assert reason(check_manifest, signed, trusted, current_version="1.6.0") == "downgrade"
    check_manifest(signed, trusted, current_version="1.6.0", allow_downgrade=True)
    tampered = bytearray(image)
    tampered[100] ^= 0xFF
    assert reason(check_image, bytes(tampered), signed.manifest) == "hash_mismatch"
    assert reason(check_image, image[:-1], signed.manifest) == "truncated"
