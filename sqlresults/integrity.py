"""Seals on stored records: a checksum over the whole record, and an optional HMAC signature.

A record row is its namespace, key, serializer spec, expiry and payload. The checksum (CRC-32)
covers all five, so damage anywhere in the row — a flipped payload byte, a truncated serializer
spec, a changed expiry, a row copied under another key — is caught before the payload is
deserialized and reported as :class:`~sqlresults.errors.IntegrityError`, never as whatever a JSON
decoder or ``datetime`` happens to raise. A checksum is no defence against someone who can write
the table, so with ``SQLRESULTS_SIGNING_KEY`` set the same five parts are HMAC-SHA256-signed.

Formats. The checksum is ``crc32(payload || header)``, the header being the length-prefixed
namespace, key and spec and the encoded expiry: computed in that order, it extends the CRC of
the payload alone, which is what sqlresults 0.1 stored. Rows written then still verify
(:func:`verify_record` accepts the payload-only checksum), with their payload checked but not
their metadata. Signatures are one version byte (``0x02``) and the 32-byte MAC; a bare 32-byte
signature is 0.1's, which left out the expiry, and still verifies.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import struct
import zlib

from sqlresults.errors import IntegrityError

__all__ = ["Signer", "damaged_record_error", "record_checksum", "verify_record"]

_SIGNATURE_VERSION = b"\x02"
_LEGACY_SIGNATURE_SIZE = 32  # sqlresults 0.1: the MAC alone, without the expiry
_NEVER = b"\x00"
_AT = b"\x01"
_DOUBLE = struct.Struct(">d")


class Signer:
    """Signs and checks records with one HMAC-SHA256 key.

    Args:
        key: The signing key (``SQLRESULTS_SIGNING_KEY``), as bytes.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "Signer(<key hidden>)"

    def sign(
        self, namespace: str, key: str, spec: str, expires: float | None, payload: bytes
    ) -> bytes:
        """The signature of a record: a version byte, then HMAC-SHA256 over every part of it.

        Binding namespace, key and serializer stops a signed payload from being replayed under
        another key or decoded with another (say, pickle) serializer; binding the expiry stops
        a record's life from being extended.
        """
        mac = self._mac(namespace, key, spec, payload)
        mac.update(_encode_expiry(expires))
        return _SIGNATURE_VERSION + mac.digest()

    def matches(
        self,
        signature: bytes,
        namespace: str,
        key: str,
        spec: str,
        expires: float | None,
        payload: bytes,
    ) -> bool:
        """Whether ``signature`` is this key's signature of the record (in either format)."""
        if len(signature) == _LEGACY_SIGNATURE_SIZE:
            legacy = self._mac(namespace, key, spec, payload).digest()
            return hmac.compare_digest(signature, legacy)
        return hmac.compare_digest(signature, self.sign(namespace, key, spec, expires, payload))

    def _mac(self, namespace: str, key: str, spec: str, payload: bytes) -> hmac.HMAC:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (namespace.encode(), key.encode(), spec.encode()):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        mac.update(payload)
        return mac


def record_checksum(
    namespace: str, key: str, spec: str, expires: float | None, payload: bytes
) -> int:
    """The CRC-32 of a whole record, as a signed 32-bit integer.

    Signed, so the stored integer keeps one width (SQLite stores values of 2**31 and above in 6
    bytes, below in 4): a rewritten row that keeps its size can be overwritten in place.
    """
    return _signed(zlib.crc32(_header(namespace, key, spec, expires), zlib.crc32(payload)))


def verify_record(
    namespace: str,
    key: str,
    spec: object,
    expires: object,
    payload: bytes,
    checksum: object,
    signature: bytes | None,
    signer: Signer | None,
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
    payload_crc = zlib.crc32(payload)
    whole = _signed(zlib.crc32(_header(namespace, key, spec, expiry), payload_crc))
    if checksum != whole and checksum != _signed(payload_crc):
        raise damaged_record_error(key, namespace)
    if signer is None:
        return
    if signature is None:
        raise IntegrityError(
            f"Result record {key!r} is not signed, and SQLRESULTS_SIGNING_KEY is set, so it "
            "is refused unread. Rewrite it with the signing key set, or delete it."
        )
    if not signer.matches(signature, namespace, key, spec, expiry, payload):
        raise IntegrityError(
            f"The signature of result record {key!r} does not match: it was written with "
            "another signing key or altered. It is refused unread."
        )


def damaged_record_error(key: str, namespace: str) -> IntegrityError:
    """The error for a record whose stored columns cannot be what sqlresults wrote."""
    return IntegrityError(
        f"Result record {key!r} in namespace {namespace!r} is damaged: its stored bytes "
        "(payload, serializer or expiry) fail the record's checksum, so they were changed "
        "outside sqlresults or corrupted. It is refused unread; delete it and recompute it."
    )


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


def _encode_expiry(expires: float | None) -> bytes:
    return _NEVER if expires is None else _AT + _DOUBLE.pack(float(expires))


def _signed(crc: int) -> int:
    return crc - (1 << 32) if crc & 0x8000_0000 else crc
