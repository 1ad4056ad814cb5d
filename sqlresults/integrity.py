"""Seals on stored records: a checksum over the whole record, and an optional HMAC signature.

A record row is its namespace, key, serializer spec, expiry, payload and, for task records, its
provenance (JSON text). The checksum (CRC-32) covers all of them, so damage anywhere in the row —
a flipped payload byte, a truncated serializer spec, a changed expiry, an edited provenance, a
row copied under another key — is caught before the payload is deserialized and reported as
:class:`~sqlresults.errors.IntegrityError`, never as whatever a JSON decoder or ``datetime``
happens to raise. A checksum is no defence against someone who can write the table, so with
``SQLRESULTS_SIGNING_KEY`` set the same parts are HMAC-SHA256-signed.

Formats. The checksum is ``crc32(payload || header || provenance)``, the header being the
length-prefixed namespace, key and spec and the encoded expiry, and the provenance part the
length-prefixed provenance text, present only when the record has one. Computed in that order,
each part extends the CRC of what comes before it: a record without provenance has exactly the
checksum it had before provenance existed, and sqlresults 0.1's checksum of the payload alone
still verifies (:func:`verify_record` accepts it), with the payload checked but not the
metadata. Signatures are one version byte and MACs: ``0x02`` and the 32-byte MAC of the record
without provenance ("the core MAC"); ``0x03``, the core MAC, then a 32-byte MAC that binds the
provenance to the core MAC, for a record with provenance. A bare 32-byte signature is 0.1's,
which left out the expiry, and still verifies.

Provenance comes off without the payload or the key. The CRC can be run backwards over the
provenance part, and a ``0x03`` signature holds the ``0x02`` one, so
:func:`seals_without_provenance` gives the seals of the same record without its provenance from
its stored seals alone: that is how downgrading to schema revision 1, which has no provenance
column, keeps every row verifiable without reading payloads or knowing the signing key. The
price: someone who can write the table can remove a signed record's provenance unnoticed
(leaving a valid record without one), though never alter it, forge it or move it to another
record.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import struct
import zlib

from sqlresults.errors import IntegrityError

__all__ = [
    "Signer",
    "damaged_record_error",
    "record_checksum",
    "seals_without_provenance",
    "verify_record",
]

_SIGNATURE_VERSION = b"\x02"
_PROVENANCE_SIGNATURE_VERSION = b"\x03"
_MAC_SIZE = 32
_LEGACY_SIGNATURE_SIZE = _MAC_SIZE  # sqlresults 0.1: the MAC alone, without the expiry
_PROVENANCE_SIGNATURE_SIZE = 1 + 2 * _MAC_SIZE
# The provenance MAC uses its own key, derived from the signing key, so no provenance MAC can
# ever pass for the core MAC of some record (or the reverse). The derivation message cannot be a
# core MAC's message either: that starts with an 8-byte length, and b"sqlresul" read as one is
# about 8e18.
_PROVENANCE_KEY_LABEL = b"sqlresults provenance"
_CRC32_POLYNOMIAL = 0xEDB88320  # zlib's CRC-32, bit-reflected
_MASK32 = 0xFFFF_FFFF
_NEVER = b"\x00"
_AT = b"\x01"
_DOUBLE = struct.Struct(">d")


class Signer:
    """Signs and checks records with one HMAC-SHA256 key.

    Args:
        key: The signing key (``SQLRESULTS_SIGNING_KEY``), as bytes.
    """

    __slots__ = ("_key", "_provenance_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._provenance_key = hmac.digest(key, _PROVENANCE_KEY_LABEL, "sha256")

    def __repr__(self) -> str:
        return "Signer(<key hidden>)"

    def sign(
        self,
        namespace: str,
        key: str,
        spec: str,
        expires: float | None,
        payload: bytes,
        provenance: str | None = None,
    ) -> bytes:
        """The signature of a record: a version byte, then HMAC-SHA256 over every part of it.

        Binding namespace, key and serializer stops a signed payload from being replayed under
        another key or decoded with another (say, pickle) serializer; binding the expiry stops
        a record's life from being extended; binding the provenance stops it from being
        altered, or moved to another record.

        Args:
            namespace: The record's namespace.
            key: The record's key.
            spec: The serializer column (JSON text).
            expires: The expires column, or None.
            payload: The payload column.
            provenance: The provenance column (JSON text), or None.

        Returns:
            33 bytes without provenance (``0x02`` and the core MAC), 65 with it (``0x03``, the
            core MAC and the provenance MAC).
        """
        mac = self._mac(namespace, key, spec, payload)
        mac.update(_encode_expiry(expires))
        core = mac.digest()
        if provenance is None:
            return _SIGNATURE_VERSION + core
        bound = hmac.digest(self._provenance_key, core + provenance.encode(), "sha256")
        return _PROVENANCE_SIGNATURE_VERSION + core + bound

    def matches(
        self,
        signature: bytes,
        namespace: str,
        key: str,
        spec: str,
        expires: float | None,
        payload: bytes,
        provenance: str | None = None,
    ) -> bool:
        """Whether ``signature`` is this key's signature of the record (in any format that
        fits it: a record with provenance has only one)."""
        if provenance is None and len(signature) == _LEGACY_SIGNATURE_SIZE:
            legacy = self._mac(namespace, key, spec, payload).digest()
            return hmac.compare_digest(signature, legacy)
        expected = self.sign(namespace, key, spec, expires, payload, provenance)
        return hmac.compare_digest(signature, expected)

    def _mac(self, namespace: str, key: str, spec: str, payload: bytes) -> hmac.HMAC:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (namespace.encode(), key.encode(), spec.encode()):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        mac.update(payload)
        return mac


def record_checksum(
    namespace: str,
    key: str,
    spec: str,
    expires: float | None,
    payload: bytes,
    provenance: str | None = None,
) -> int:
    """The CRC-32 of a whole record, as a signed 32-bit integer.

    Signed, so the stored integer keeps one width (SQLite stores values of 2**31 and above in 6
    bytes, below in 4): a rewritten row that keeps its size can be overwritten in place.

    Args:
        namespace: The record's namespace.
        key: The record's key.
        spec: The serializer column (JSON text).
        expires: The expires column, or None.
        payload: The payload column.
        provenance: The provenance column (JSON text), or None: then the checksum is the one
            sqlresults wrote before records had provenance.

    Returns:
        The checksum column's value.
    """
    crc = zlib.crc32(_header(namespace, key, spec, expires), zlib.crc32(payload))
    if provenance is not None:
        crc = zlib.crc32(_provenance_part(provenance), crc)
    return _signed(crc)


def verify_record(
    namespace: str,
    key: str,
    spec: object,
    expires: object,
    payload: bytes,
    checksum: object,
    signature: bytes | None,
    signer: Signer | None,
    *,
    provenance: object = None,
) -> None:
    """Check a record read from the database before anything in it is decoded.

    Args:
        namespace: The namespace it was read from.
        key: The key it was read under.
        spec: The serializer column (a JSON text when undamaged).
        expires: The expires column (seconds since the epoch, or None, when undamaged).
        payload: The payload column.
        checksum: The checksum column.
        signature: The signature column.
        signer: The store's signer, when ``SQLRESULTS_SIGNING_KEY`` is set.
        provenance: The provenance column (a JSON text or None, when undamaged).

    Raises:
        IntegrityError: A column holds a value of the wrong type, the checksum does not match
            (damage), the record is unsigned while a signing key is set, or its signature
            does not match.
    """
    if expires is None or type(expires) is float:
        expiry: float | None = expires
    elif type(expires) is int:  # SQLite hands back a REAL that holds an integer as an int
        expiry = float(expires)
    else:
        raise damaged_record_error(key, namespace)
    if not isinstance(spec, str) or not isinstance(checksum, int):
        raise damaged_record_error(key, namespace)
    if provenance is not None and not isinstance(provenance, str):
        raise damaged_record_error(key, namespace)
    payload_crc = zlib.crc32(payload)
    whole = zlib.crc32(_header(namespace, key, spec, expiry), payload_crc)
    if provenance is not None:
        # Provenance came after the payload-only checksum: a record with one has one format.
        if checksum != _signed(zlib.crc32(_provenance_part(provenance), whole)):
            raise damaged_record_error(key, namespace)
    elif checksum != _signed(whole) and checksum != _signed(payload_crc):
        raise damaged_record_error(key, namespace)
    if signer is None:
        return
    if signature is None:
        raise IntegrityError(
            f"Result record {key!r} is not signed, and SQLRESULTS_SIGNING_KEY is set, so it "
            "is refused unread. Rewrite it with the signing key set, or delete it."
        )
    if not signer.matches(signature, namespace, key, spec, expiry, payload, provenance):
        raise IntegrityError(
            f"The signature of result record {key!r} does not match: it was written with "
            "another signing key or altered. It is refused unread."
        )


def damaged_record_error(key: str, namespace: str) -> IntegrityError:
    """The error for a record whose stored columns cannot be what sqlresults wrote."""
    return IntegrityError(
        f"Result record {key!r} in namespace {namespace!r} is damaged: its stored bytes "
        "(payload, serializer, expiry or provenance) fail the record's checksum, so they were "
        "changed outside sqlresults or corrupted. It is refused unread; delete it and recompute "
        "it."
    )


def seals_without_provenance(
    checksum: int, signature: bytes | None, provenance: str
) -> tuple[int, bytes | None]:
    """The checksum and signature a record would carry without its provenance, from the ones it
    carries with it: no payload, no other column and no signing key needed.

    Downgrading to schema revision 1 (no provenance column) rewrites each record with
    provenance this way, so that sqlresults versions before provenance still verify it. Damage
    is kept, never laundered: a record that fails its seals with its provenance fails the
    returned seals without it.

    Args:
        checksum: The record's checksum column.
        signature: Its signature column, or None.
        provenance: Its provenance column.

    Returns:
        ``(checksum, signature)`` of the record without provenance. A signature in the
        provenance format is cut back to its core (``0x02`` and the core MAC); any other
        signature is returned as it is.
    """
    crc = _unwind_crc32(checksum & _MASK32, _provenance_part(provenance))
    if (
        signature is not None
        and len(signature) == _PROVENANCE_SIGNATURE_SIZE
        and signature[:1] == _PROVENANCE_SIGNATURE_VERSION
    ):
        signature = _SIGNATURE_VERSION + signature[1 : 1 + _MAC_SIZE]
    return _signed(crc), signature


def _header(namespace: str, key: str, spec: str, expires: float | None) -> bytes:
    encoded_key = key.encode()
    return b"".join(
        (
            _length_prefixed(namespace),
            len(encoded_key).to_bytes(4, "big"),
            encoded_key,
            _length_prefixed(spec),
            _encode_expiry(expires),
        )
    )


@functools.lru_cache(maxsize=256)
def _length_prefixed(text: str) -> bytes:
    # Namespaces and serializer specs repeat from record to record: encode each once.
    encoded = text.encode()
    return len(encoded).to_bytes(4, "big") + encoded


def _provenance_part(provenance: str) -> bytes:
    encoded = provenance.encode()
    return len(encoded).to_bytes(4, "big") + encoded


def _encode_expiry(expires: float | None) -> bytes:
    return _NEVER if expires is None else _AT + _DOUBLE.pack(float(expires))


def _signed(crc: int) -> int:
    return crc - (1 << 32) if crc & 0x8000_0000 else crc


def _unwind_crc32(crc: int, data: bytes) -> int:
    """The ``value`` for which ``zlib.crc32(data, value) == crc``: the CRC-32 run backwards.

    One CRC step is ``c = T[(c ^ byte) & 0xFF] ^ (c >> 8)``. The top byte of the result comes
    from the table entry alone, and the 256 entries have 256 different top bytes, so each step
    can be undone: find the entry by its top byte, remove it, and recover the shifted-out byte.
    """
    table, index_by_top_byte = _crc32_tables()
    value = crc ^ _MASK32  # zlib inverts the register before and after
    for byte in reversed(data):
        index = index_by_top_byte[value >> 24]
        value = (((value ^ table[index]) << 8) & _MASK32) | (index ^ byte)
    return value ^ _MASK32


@functools.cache
def _crc32_tables() -> tuple[tuple[int, ...], dict[int, int]]:
    table = []
    for index in range(256):
        value = index
        for _ in range(8):
            value = (value >> 1) ^ _CRC32_POLYNOMIAL if value & 1 else value >> 1
        table.append(value)
    index_by_top_byte = {value >> 24: index for index, value in enumerate(table)}
    assert len(index_by_top_byte) == 256  # the property that makes unwinding possible
    return tuple(table), index_by_top_byte
