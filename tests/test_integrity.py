"""Tests for sqlresults.integrity: the checksum and signature that seal a record row.

The store-level behaviour (damaged columns refused on read, on both backends) is in
test_results.py (``TestIntegrity``, ``TestSigning``); these tests pin the formats themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlresults.errors import IntegrityError
from sqlresults.integrity import (
    Signer,
    record_checksum,
    seals_without_provenance,
    verify_record,
)

PARTS = ("ns", "key/1", '{"type":"pickle"}', 1_800_000_000.5, b"payload bytes")
KEY = b"0123456789abcdef0123456789abcdef"
PROVENANCE = '{"task":"pipeline.train","components":{"inputs.model":"9f1c"}}'
# Written by sqlresults before provenance existed (main at a036e97) for PARTS and KEY: a record
# without provenance must keep exactly these seals.
CHECKSUM_BEFORE_PROVENANCE = -310324101
SIGNATURE_BEFORE_PROVENANCE = bytes.fromhex(
    "0204a72e66c7779fdabbf8741fcae233f21321bf5fb54013222ab0ef9b6d7e6f55"
)

_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_parts = st.tuples(
    _texts,
    _texts,
    _texts,
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
    st.binary(max_size=200),
)


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


class TestChecksumWithProvenance:
    def test_without_provenance_the_checksum_is_unchanged(self) -> None:
        """A record without provenance has the checksum sqlresults wrote before provenance
        existed, so rows written then verify as they are."""
        assert record_checksum(*PARTS) == CHECKSUM_BEFORE_PROVENANCE
        assert record_checksum(*PARTS, None) == CHECKSUM_BEFORE_PROVENANCE
        verify_record(*PARTS, CHECKSUM_BEFORE_PROVENANCE, None, None)

    def test_provenance_extends_the_checksum(self) -> None:
        """With provenance, the checksum is the CRC of the record continued over the
        length-prefixed provenance, and differs for every provenance."""
        encoded = PROVENANCE.encode()
        continued = zlib.crc32(
            len(encoded).to_bytes(4, "big") + encoded, CHECKSUM_BEFORE_PROVENANCE & 0xFFFF_FFFF
        )
        expected = continued - (1 << 32) if continued & 0x8000_0000 else continued
        assert record_checksum(*PARTS, PROVENANCE) == expected
        assert record_checksum(*PARTS, "") != record_checksum(*PARTS)
        assert record_checksum(*PARTS, PROVENANCE) != record_checksum(*PARTS, PROVENANCE + " ")

    def test_record_with_provenance_verifies(self) -> None:
        """A record verifies with the provenance it was sealed with."""
        checksum = record_checksum(*PARTS, PROVENANCE)
        verify_record(*PARTS, checksum, None, None, provenance=PROVENANCE)

    @pytest.mark.parametrize(
        ("sealed_with", "read_with"),
        [
            (PROVENANCE, PROVENANCE.replace("9f1c", "9f1d")),  # a fingerprint edited
            (PROVENANCE, None),  # the provenance removed, the checksum left as it was
            (None, PROVENANCE),  # provenance added to a record that had none
        ],
        ids=["edited", "removed", "added"],
    )
    def test_provenance_damage_is_detected(
        self, sealed_with: str | None, read_with: str | None
    ) -> None:
        """A provenance edited, removed or added after the record was sealed fails the
        checksum."""
        checksum = record_checksum(*PARTS, sealed_with)
        with pytest.raises(IntegrityError, match="damaged"):
            verify_record(*PARTS, checksum, None, None, provenance=read_with)

    def test_payload_only_checksum_does_not_cover_provenance(self) -> None:
        """sqlresults 0.1's payload-only checksum is accepted only for records without
        provenance (which 0.1 never wrote): otherwise it would leave the provenance
        unchecked."""
        namespace, key, spec, expires, payload = PARTS
        with pytest.raises(IntegrityError, match="damaged"):
            verify_record(
                namespace,
                key,
                spec,
                expires,
                payload,
                legacy_checksum(payload),
                None,
                None,
                provenance=PROVENANCE,
            )

    @pytest.mark.parametrize("provenance", [b"{}", 1, 2.5])
    def test_provenance_of_the_wrong_type_is_damage(self, provenance: object) -> None:
        """A provenance column holding something other than text is damage, not a
        TypeError."""
        with pytest.raises(IntegrityError, match="damaged"):
            verify_record(*PARTS, record_checksum(*PARTS), None, None, provenance=provenance)


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

    def test_without_provenance_the_signature_is_unchanged(self) -> None:
        """A record without provenance gets the signature sqlresults wrote before provenance
        existed."""
        assert Signer(KEY).sign(*PARTS) == SIGNATURE_BEFORE_PROVENANCE
        verify_record(*PARTS, CHECKSUM_BEFORE_PROVENANCE, SIGNATURE_BEFORE_PROVENANCE, Signer(KEY))

    def test_provenance_signature_format(self) -> None:
        """With provenance the signature is 0x03, the signature-without-provenance's MAC, and
        a MAC binding the provenance to it; it verifies."""
        signature = Signer(KEY).sign(*PARTS, PROVENANCE)
        assert len(signature) == 65
        assert signature[:1] == b"\x03"
        assert signature[1:33] == SIGNATURE_BEFORE_PROVENANCE[1:]
        checksum = record_checksum(*PARTS, PROVENANCE)
        verify_record(*PARTS, checksum, signature, Signer(KEY), provenance=PROVENANCE)

    @pytest.mark.parametrize(
        ("signed_with", "read_with"),
        [
            (PROVENANCE, PROVENANCE.replace("9f1c", "9f1d")),
            (PROVENANCE, None),
            (None, PROVENANCE),
        ],
        ids=["edited", "removed-signature-kept", "added"],
    )
    def test_provenance_changes_fail_the_signature(
        self, signed_with: str | None, read_with: str | None
    ) -> None:
        """Someone who can write the table but has no key cannot edit, add or drop a signed
        record's provenance (with the checksum recomputed to match) without failing the
        signature."""
        signature = Signer(KEY).sign(*PARTS, signed_with)
        checksum = record_checksum(*PARTS, read_with)
        with pytest.raises(IntegrityError, match="signature"):
            verify_record(*PARTS, checksum, signature, Signer(KEY), provenance=read_with)

    def test_provenance_cannot_move_to_another_record(self) -> None:
        """The provenance MAC is bound to its record: a provenance and its MAC copied onto
        another record signed by the same key (checksum recomputed) fail the signature."""
        signer = Signer(KEY)
        other = (*PARTS[:4], b"other payload")
        own_signature = signer.sign(*other)
        stolen = signer.sign(*PARTS, PROVENANCE)
        forged = b"\x03" + own_signature[1:] + stolen[33:]
        checksum = record_checksum(*other, PROVENANCE)
        with pytest.raises(IntegrityError, match="signature"):
            verify_record(*other, checksum, forged, signer, provenance=PROVENANCE)

    def test_legacy_signature_does_not_cover_provenance(self) -> None:
        """sqlresults 0.1's 32-byte signature is refused for a record with provenance."""
        namespace, key, spec, _expires, payload = PARTS
        mac = hmac.new(KEY, digestmod=hashlib.sha256)
        for part in (namespace.encode(), key.encode(), spec.encode()):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        mac.update(payload)
        checksum = record_checksum(*PARTS, PROVENANCE)
        with pytest.raises(IntegrityError, match="signature"):
            verify_record(*PARTS, checksum, mac.digest(), Signer(KEY), provenance=PROVENANCE)

    def test_repr_hides_the_key(self) -> None:
        """The signing key never shows in a repr."""
        assert KEY.decode() not in repr(Signer(KEY))


class TestSealsWithoutProvenance:
    """What downgrading to schema revision 1 does to each record with provenance."""

    @given(parts=_parts, provenance=_texts)
    def test_gives_the_seals_of_the_record_without_provenance(
        self, parts: tuple[str, str, str, float | None, bytes], provenance: str
    ) -> None:
        """From a record's seals with provenance and the provenance alone (no payload, no
        key), it gives exactly the checksum and signature the record has without
        provenance."""
        signer = Signer(KEY)
        checksum, signature = seals_without_provenance(
            record_checksum(*parts, provenance), signer.sign(*parts, provenance), provenance
        )
        assert checksum == record_checksum(*parts)
        assert signature == signer.sign(*parts)
        verify_record(*parts, checksum, signature, signer)

    @given(data=st.binary(max_size=300), start=st.integers(0, 2**32 - 1))
    def test_the_crc_runs_backwards(self, data: bytes, start: int) -> None:
        """Unwinding a CRC-32 over ``data`` gives back the CRC it started from (checked
        through the public function: a record's checksum without provenance)."""
        provenance = data.decode("latin-1")
        encoded = provenance.encode()
        extended = zlib.crc32(len(encoded).to_bytes(4, "big") + encoded, start)
        signed_extended = extended - (1 << 32) if extended & 0x8000_0000 else extended
        checksum, _ = seals_without_provenance(signed_extended, None, provenance)
        assert checksum & 0xFFFF_FFFF == start

    def test_unsigned_and_other_signatures_pass_through(self) -> None:
        """No signature stays None; a signature not in the provenance format (0.1's, or one
        written without provenance) is left as it is, to be judged on read."""
        checksum = record_checksum(*PARTS, PROVENANCE)
        assert seals_without_provenance(checksum, None, PROVENANCE)[1] is None
        legacy = b"\x07" * 32
        assert seals_without_provenance(checksum, legacy, PROVENANCE)[1] == legacy
        plain = Signer(KEY).sign(*PARTS)
        assert seals_without_provenance(checksum, plain, PROVENANCE)[1] == plain

    def test_damage_is_kept(self) -> None:
        """A record whose provenance was damaged before the downgrade still fails its
        checksum after it: removing the provenance does not launder damage."""
        checksum = record_checksum(*PARTS, PROVENANCE)
        damaged = PROVENANCE.replace("9f1c", "9f1d")
        without, _ = seals_without_provenance(checksum, None, damaged)
        with pytest.raises(IntegrityError, match="damaged"):
            verify_record(*PARTS, without, None, None)
