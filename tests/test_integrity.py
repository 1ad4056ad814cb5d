"""Tests for sqlresults.integrity: the checksum and signature that seal a record row.

The store-level behaviour (damaged columns refused on read, on both backends) is in
test_results.py (``TestIntegrity``, ``TestSigning``); these tests pin the formats themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

import pytest

from sqlresults.errors import IntegrityError
from sqlresults.integrity import Signer, record_checksum, verify_record

PARTS = ("ns", "key/1", '{"type":"pickle"}', 1_800_000_000.5, b"payload bytes")
KEY = b"0123456789abcdef0123456789abcdef"


def legacy_checksum(payload: bytes) -> int:
    """sqlresults 0.1's checksum: the signed CRC-32 of the payload alone."""
    crc = zlib.crc32(payload)
    return crc - (1 << 32) if crc & 0x8000_0000 else crc


class TestChecksum:
    def test_every_part_changes_it(self) -> None:
        """Changing any one of namespace, key, spec, expiry or payload changes the checksum."""
        base = record_checksum(*PARTS)
        variants = [
            ("ns2", *PARTS[1:]),
            (PARTS[0], "key/2", *PARTS[2:]),
            (*PARTS[:2], '{"type":"json"}', *PARTS[3:]),
            (*PARTS[:3], 1_800_000_000.75, PARTS[4]),
            (*PARTS[:3], None, PARTS[4]),
            (*PARTS[:4], b"payload byteS"),
        ]
        for variant in variants:
            assert record_checksum(*variant) != base, variant

    def test_parts_cannot_slide_into_each_other(self) -> None:
        """Parts are length-prefixed: moving characters from the namespace to the key gives
        another checksum."""
        assert record_checksum("ab", "c", "s", None, b"") != record_checksum(
            "a", "bc", "s", None, b""
        )

    def test_is_a_signed_32_bit_integer(self) -> None:
        """The checksum fits a signed 32-bit column."""
        for n in range(200):
            value = record_checksum("ns", f"k{n}", "s", None, bytes([n]))
            assert -(2**31) <= value < 2**31

    def test_legacy_checksum_still_verifies(self) -> None:
        """A row written by sqlresults 0.1 (payload-only checksum) verifies."""
        namespace, key, spec, expires, payload = PARTS
        verify_record(namespace, key, spec, expires, payload, legacy_checksum(payload), None, None)

    def test_wrong_checksum_is_damage(self) -> None:
        """A checksum matching neither format is reported as damage, naming key and
        namespace."""
        namespace, key, spec, expires, payload = PARTS
        with pytest.raises(IntegrityError, match=r"'key/1' in namespace 'ns' is damaged"):
            verify_record(namespace, key, spec, expires, payload, 12345, None, None)

    @pytest.mark.parametrize(
        ("spec", "expires", "checksum"),
        [(b"bytes spec", None, 0), ("spec", "tomorrow", 0), ("spec", None, "0"), ("s", True, 0)],
    )
    def test_columns_of_the_wrong_type_are_damage(
        self, spec: object, expires: object, checksum: object
    ) -> None:
        """A column holding a value of the wrong type (SQLite keeps whatever is stored) is
        damage, not a TypeError."""
        with pytest.raises(IntegrityError, match="damaged"):
            verify_record("ns", "k", spec, expires, b"p", checksum, None, None)


class TestSignature:
    def test_round_trip(self) -> None:
        """A record signed by a key verifies with it, carrying a version byte and the MAC."""
        signer = Signer(KEY)
        signature = signer.sign(*PARTS)
        assert len(signature) == 33
        assert signature[:1] == b"\x02"
        verify_record(*PARTS, record_checksum(*PARTS), signature, signer)

    def test_expiry_is_signed(self) -> None:
        """A changed expiry with a recomputed checksum fails the signature."""
        signer = Signer(KEY)
        signature = signer.sign(*PARTS)
        changed = (*PARTS[:3], 4_102_444_800.0, PARTS[4])
        with pytest.raises(IntegrityError, match="signature"):
            verify_record(*changed, record_checksum(*changed), signature, signer)

    def test_another_key_does_not_verify(self) -> None:
        """A signature made with another key is refused."""
        signature = Signer(b"another key, 32 bytes long......").sign(*PARTS)
        with pytest.raises(IntegrityError, match="signature"):
            verify_record(*PARTS, record_checksum(*PARTS), signature, Signer(KEY))

    def test_unsigned_is_refused_when_a_key_is_set(self) -> None:
        """No signature while a signing key is set: refused unread."""
        with pytest.raises(IntegrityError, match="not signed"):
            verify_record(*PARTS, record_checksum(*PARTS), None, Signer(KEY))

    def test_legacy_signature_still_verifies(self) -> None:
        """sqlresults 0.1's signature (the bare MAC over namespace, key, spec and payload)
        still verifies."""
        namespace, key, spec, _expires, payload = PARTS
        mac = hmac.new(KEY, digestmod=hashlib.sha256)
        for part in (namespace.encode(), key.encode(), spec.encode()):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        mac.update(payload)
        verify_record(*PARTS, legacy_checksum(payload), mac.digest(), Signer(KEY))

    def test_repr_hides_the_key(self) -> None:
        """The signing key never shows in a repr."""
        assert KEY.decode() not in repr(Signer(KEY))
