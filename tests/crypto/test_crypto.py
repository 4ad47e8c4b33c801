"""Master key sources, envelope wrapping, and AES-GCM associated-data binding."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from signalvault.config import CryptoSettings, Secret
from signalvault.crypto.envelope import Cipher, MasterKey, load_master_key, new_key
from signalvault.errors import ConfigError, CryptoError

KEY = bytes(range(32))


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_master_key_is_generated_once_with_private_modes(tmp_path):
    data_dir = tmp_path / "data"
    first = load_master_key(CryptoSettings(), data_dir)
    second = load_master_key(CryptoSettings(), data_dir)
    assert first == second and len(first.key) == 32
    assert mode(data_dir) == 0o700 and mode(data_dir / "master.key") == 0o600


def test_existing_data_dir_is_tightened(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)  # noqa: S103 - the loose mode the loader must tighten
    load_master_key(CryptoSettings(), data_dir)
    assert mode(data_dir) == 0o700


@pytest.mark.parametrize("encode", [bytes.hex, lambda k: base64.b64encode(k).decode()])
def test_master_key_from_environment_hex_or_base64(tmp_path, encode):
    settings = CryptoSettings(master_key=Secret(encode(KEY)))
    assert load_master_key(settings, tmp_path / "data").key == KEY
    assert not (tmp_path / "data" / "master.key").exists()


def test_master_key_from_file(tmp_path):
    path = tmp_path / "mk"
    path.write_text(KEY.hex() + "\n")
    assert load_master_key(CryptoSettings(master_key_file=path), tmp_path / "d").key == KEY


@pytest.mark.parametrize("text", ["zz", "00" * 31, base64.b64encode(b"x" * 16).decode(), ""])
def test_malformed_master_key_is_a_config_error(tmp_path, text):
    with pytest.raises(ConfigError, match="must be 32 bytes"):
        load_master_key(CryptoSettings(master_key=Secret(text)), tmp_path)


def test_missing_master_key_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read master key file"):
        load_master_key(CryptoSettings(master_key_file=tmp_path / "absent"), tmp_path)


def test_unusable_data_dir_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot use data directory"):
        load_master_key(CryptoSettings(), blocker)


def test_wrap_and_unwrap():
    master = MasterKey.from_bytes(KEY)
    data_key = new_key()
    wrapped = master.wrap("dk_1", data_key)
    assert data_key not in wrapped
    assert master.unwrap("dk_1", wrapped) == data_key


def test_wrapped_key_is_bound_to_its_name():
    master = MasterKey.from_bytes(KEY)
    wrapped = master.wrap("dk_1", new_key())
    with pytest.raises(CryptoError, match="cannot unwrap dk_2"):
        master.unwrap("dk_2", wrapped)


def test_wrong_master_key_fails_clearly():
    wrapped = MasterKey.from_bytes(KEY).wrap("key-pepper", new_key())
    other = MasterKey.from_bytes(bytes(32))
    assert other.key_id != MasterKey.from_bytes(KEY).key_id
    with pytest.raises(CryptoError, match="the master key does not match"):
        other.unwrap("key-pepper", wrapped)


def test_ciphertext_moved_to_another_record_does_not_decrypt():
    cipher = Cipher(new_key())
    blob = cipher.encrypt(b"prompt text", b"record-a:prompt")
    assert b"prompt text" not in blob
    assert cipher.decrypt(blob, b"record-a:prompt") == b"prompt text"
    with pytest.raises(CryptoError, match="does not authenticate"):
        cipher.decrypt(blob, b"record-b:prompt")


def test_altered_ciphertext_does_not_decrypt():
    cipher = Cipher(new_key())
    blob = bytearray(cipher.encrypt(b"prompt text", b"ad"))
    blob[-1] ^= 1
    with pytest.raises(CryptoError):
        cipher.decrypt(bytes(blob), b"ad")


def test_each_encryption_uses_a_fresh_nonce():
    cipher = Cipher(new_key())
    assert cipher.encrypt(b"same", b"ad") != cipher.encrypt(b"same", b"ad")


def test_raw_bytes_master_key_file_is_a_config_error(tmp_path):
    path = tmp_path / "mk"
    path.write_bytes(b"\xff\xd4" + KEY[2:])
    with pytest.raises(ConfigError, match="must be 32 bytes"):
        load_master_key(CryptoSettings(master_key_file=path), tmp_path / "d")
