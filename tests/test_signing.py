"""Ed25519 keys and signatures, interoperable with OpenSSL."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from kiosk.errors import KioskError, PackageRejected
from kiosk.library.signing import generate_key, sign_bytes, trusted_keys, verify_signature

DATA = b"0123  bagit.txt\n"


def keypair(tmp: Path, name: str = "pub") -> tuple[Path, Path]:
    key = tmp / "keys" / f"{name}.pem"
    key.parent.mkdir(exist_ok=True)
    generate_key(key)
    trust = tmp / "trust"
    trust.mkdir(exist_ok=True)
    shutil.copy(key.with_name(key.name + ".pub"), trust / f"{name}.pub")
    return key, trust


def test_keygen_writes_a_private_key_only_its_owner_can_read_and_a_public_key(tmp_path: Path) -> None:
    out = tmp_path / "publisher.pem"
    pub = generate_key(out)
    assert pub == tmp_path / "publisher.pem.pub"
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_keygen_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    generate_key(out)
    before = out.read_bytes()
    with pytest.raises(KioskError):
        generate_key(out)
    assert out.read_bytes() == before


def test_a_signature_verifies_with_the_trusted_key_and_names_it(tmp_path: Path) -> None:
    key, trust = keypair(tmp_path)
    line = sign_bytes(key, DATA)
    assert "\n" not in line and len(base64.b64decode(line)) == 64
    assert verify_signature(DATA, line.encode() + b"\n", trust) == "pub.pub"
    assert verify_signature(DATA, line.encode() + b"\r\n", trust) == "pub.pub"


@pytest.mark.parametrize("line", [b"", b"not base64 !!", base64.b64encode(b"x" * 63), b"AAAA\nAAAA", base64.b64encode(b"x" * 64)[:-2], b"x" * 5000])
def test_a_missing_or_garbled_signature_is_a_bad_signature(tmp_path: Path, line: bytes) -> None:
    _, trust = keypair(tmp_path)
    with pytest.raises(PackageRejected) as e:
        verify_signature(DATA, line, trust)
    assert e.value.reason == "bad_signature"


def test_a_signature_by_a_key_not_in_the_trust_folder_is_untrusted(tmp_path: Path) -> None:
    _, trust = keypair(tmp_path, "trusted")
    stranger = tmp_path / "stranger.pem"
    generate_key(stranger)
    with pytest.raises(PackageRejected) as e:
        verify_signature(DATA, sign_bytes(stranger, DATA).encode(), trust)
    assert e.value.reason == "untrusted"


def test_a_signature_over_other_bytes_is_untrusted(tmp_path: Path) -> None:
    key, trust = keypair(tmp_path)
    with pytest.raises(PackageRejected) as e:
        verify_signature(DATA + b"changed", sign_bytes(key, DATA).encode(), trust)
    assert e.value.reason == "untrusted"


def test_an_empty_or_missing_trust_folder_trusts_nothing(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    generate_key(key)
    (tmp_path / "empty").mkdir()
    for trust in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(PackageRejected) as e:
            verify_signature(DATA, sign_bytes(key, DATA).encode(), trust)
        assert e.value.reason == "untrusted"


def test_a_key_added_to_the_trust_folder_is_seen_at_once(tmp_path: Path) -> None:
    key, trust = keypair(tmp_path, "first")
    second = tmp_path / "second.pem"
    generate_key(second)
    assert [n for n, _ in trusted_keys(trust)] == ["first.pub"]
    shutil.copy(tmp_path / "second.pem.pub", trust / "second.pub")
    assert verify_signature(DATA, sign_bytes(second, DATA).encode(), trust) == "second.pub"


def test_files_in_the_trust_folder_that_are_not_ed25519_public_keys_are_skipped(tmp_path: Path) -> None:
    key, trust = keypair(tmp_path)
    (trust / "README").write_text("put publisher keys here\n")
    (trust / "broken.pub").write_text("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n")
    shutil.copy(key, trust / "private.pem")  # a private key there by mistake is never loaded
    assert [n for n, _ in trusted_keys(trust)] == ["pub.pub"]


@pytest.mark.needs(shutil.which("openssl") is not None, "openssl not installed")
def test_keys_from_openssl_sign_and_our_signatures_verify_with_openssl(tmp_path: Path) -> None:
    key = tmp_path / "ossl.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True, capture_output=True)
    trust = tmp_path / "trust"
    trust.mkdir()
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(trust / "ossl.pub")], check=True, capture_output=True)
    data = tmp_path / "data"
    data.write_bytes(DATA)
    # openssl signs, we verify
    sig = tmp_path / "sig"
    subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(key), "-in", str(data), "-out", str(sig)], check=True, capture_output=True)
    assert verify_signature(DATA, base64.b64encode(sig.read_bytes()), trust) == "ossl.pub"
    # we sign with the openssl key, openssl verifies
    sig.write_bytes(base64.b64decode(sign_bytes(key, DATA)))
    done = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", str(trust / "ossl.pub"), "-in", str(data), "-sigfile", str(sig)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr


def test_signing_with_a_file_that_is_not_an_ed25519_key_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("hello")
    with pytest.raises(KioskError):
        sign_bytes(bad, DATA)


def test_a_signature_wrapped_by_base64_tools_still_verifies(tmp_path: Path) -> None:
    key, trust = keypair(tmp_path)
    line = sign_bytes(key, DATA)
    wrapped = (line[:76] + "\n" + line[76:] + "\n").encode()  # as coreutils' base64 writes it
    assert verify_signature(DATA, wrapped, trust) == "pub.pub"
