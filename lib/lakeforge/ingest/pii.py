"""Keyed hashing of PII columns: HMAC-SHA256 with a key that only ever comes from the environment.

Spark has no built-in HMAC, so it is composed in the JVM from ``sha2`` exactly as RFC 2104 defines it:
``HMAC(K, m) = SHA256((K' xor opad) || SHA256((K' xor ipad) || m))``, with ``K'`` the key (hashed first when
longer than the 64-byte SHA-256 block) padded with zeros to 64 bytes. The result is the same lowercase hex
digest as Python's ``hmac.new(key, value.encode(), sha256).hexdigest()`` (``hmac_hex``), so values hashed
before (by a Python UDF) and now join.

The two padded keys are never literals of an expression: they sit in a one-row DataFrame that is broadcast
and cross-joined to the rows, so a query plan, a log line or the Spark UI shows only their column names.
Equal values hash equally under one key, so joins on a hashed column (``tailnum`` in flights and planes) still
work.

What cannot be hashed by column (the raw text of a malformed line, where a PII value may sit under any name) is
encrypted instead: Spark's ``aes_encrypt`` in GCM mode (AES-256, a random IV per value, authenticated), with a key
derived from the same secret (SHA-256 of a fixed label and the PII key), stored as ``aes-256-gcm:<base64>``;
``decrypt_text`` reads it back for whoever holds the key.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.errors import PiiKeyMissingError

_BLOCK = 64  # SHA-256 block size in bytes
_IPAD, _OPAD = "__pii_ipad", "__pii_opad"
_AES_KEY = "__pii_aes_key"
ENCRYPTED_PREFIX = "aes-256-gcm:"


def hmac_hex(key: bytes, value: str) -> str:
    """The reference implementation (Python's ``hmac``); the Spark expression must agree with it."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if not key:
        raise PiiKeyMissingError("an empty PII key is not a key")
    block = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def _hmac_expr(column: Column) -> Column:
    """HMAC-SHA256 hex of ``column`` (cast to string, UTF-8) given the pad columns; nulls stay null."""
    inner = F.unhex(F.sha2(F.concat(F.col(_IPAD), column.cast("string").cast("binary")), 256))
    return F.sha2(F.concat(F.col(_OPAD), inner), 256)


def hash_columns(frame: DataFrame, columns: Iterable[str], key: bytes | None) -> DataFrame:
    """``frame`` with each of ``columns`` replaced (same name, same position) by its HMAC-SHA256 hex digest.

    Without columns, the frame is returned as is; columns to hash without a key raise ``PiiKeyMissingError``.
    """
    columns = [c for c in columns if c in frame.columns]
    if not columns:
        return frame
    if key is None:
        raise PiiKeyMissingError("PII columns to hash and no key")
    ipad, opad = _pads(key)
    pads = frame.sparkSession.createDataFrame([(bytearray(ipad), bytearray(opad))], f"{_IPAD} binary, {_OPAD} binary")
    joined = frame.crossJoin(F.broadcast(pads))
    return joined.select(*[_hmac_expr(F.col(f"`{c}`")).alias(c) if c in columns else F.col(f"`{c}`")
                           for c in frame.columns])


def _aes_key(key: bytes) -> bytes:
    if not key:
        raise PiiKeyMissingError("an empty PII key is not a key")
    return hashlib.sha256(b"lakeforge raw-text encryption|" + key).digest()


def _with_key(frame: DataFrame, key: bytes | None) -> DataFrame:
    if key is None:
        raise PiiKeyMissingError("raw text to encrypt and no key")
    keys = frame.sparkSession.createDataFrame([(bytearray(_aes_key(key)),)], f"{_AES_KEY} binary")
    return frame.crossJoin(F.broadcast(keys))


def encrypt_text(frame: DataFrame, column: str, key: bytes | None) -> DataFrame:
    """``frame`` with ``column`` (text) replaced by ``aes-256-gcm:<base64>`` of its UTF-8 bytes; nulls stay null.
    The key, like the HMAC pads, is a column of a broadcast one-row frame, never a literal of the plan."""
    encrypted = F.concat(F.lit(ENCRYPTED_PREFIX),
                         F.base64(F.aes_encrypt(F.col(f"`{column}`").cast("binary"), F.col(_AES_KEY), F.lit("GCM"))))
    joined = _with_key(frame, key)
    return joined.select(*[F.when(F.col(f"`{c}`").isNotNull(), encrypted).alias(c) if c == column else F.col(f"`{c}`")
                           for c in frame.columns])


def decrypt_text(frame: DataFrame, column: str, key: bytes) -> DataFrame:
    """The inverse of ``encrypt_text`` (for an operator holding the PII key, e.g. to inspect a malformed line)."""
    body = F.unbase64(F.substring(F.col(f"`{column}`"), len(ENCRYPTED_PREFIX) + 1, 1 << 30))
    joined = _with_key(frame, key)
    return joined.select(*[F.aes_decrypt(body, F.col(_AES_KEY), F.lit("GCM")).cast("string").alias(c) if c == column
                           else F.col(f"`{c}`") for c in frame.columns])
