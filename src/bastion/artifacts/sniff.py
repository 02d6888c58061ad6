"""Format detection from content: magic bytes and structure, never the file name.

Examples
--------
>>> from bastion.artifacts.sniff import sniff
>>> sniff(b"\\x80\\x04\\x95", size=3)
'pickle'
>>> sniff(b"PK\\x03\\x04" + bytes(26), size=30)
'zip'
>>> sniff(b"\\x93NUMPY\\x01\\x00", size=8)
'npy'
>>> sniff(b"plain text", size=10)
'unknown'

A safetensors header of 128 + 256k bytes (k <= 5) starts with ``80 0k``, which is
also how a pickle starts; the third byte decides, since a pickle loader stops at once
on a byte that is no opcode:

>>> header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'.ljust(128)
>>> sniff((128).to_bytes(8, "little") + header + bytes(4), size=8 + 128 + 4)
'safetensors'
"""

from __future__ import annotations

import pickletools
import struct

__all__ = ["HEAD_BYTES", "sniff"]

#: How many leading bytes :func:`sniff` needs.
HEAD_BYTES = 512

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\x93NUMPY", "npy"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"GGUF", "gguf"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"ZF0x", "joblib-zfile"),
)


#: Every byte Python's unpickler accepts as an opcode.
_PICKLE_OPCODES = frozenset(ord(op.code) for op in pickletools.opcodes)


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    try:  # a v7 tar header: octal checksum over the header with the field as spaces
        stored = int(head[148:156].split(b"\x00", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(head[:148]) + 8 * 32 + sum(head[156:512])
    return stored == computed and head[0] != 0


def _is_zlib(head: bytes) -> bool:
    return (
        len(head) >= 2
        and head[0] & 0x0F == 8
        and head[0] >> 4 <= 7
        and (head[0] * 256 + head[1]) % 31 == 0
    )


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _is_lzma_alone(head: bytes) -> bool:
    # properties byte 0x5D (lc=3, lp=0, pb=2) and a power-of-two-ish dictionary size
    return (
        len(head) >= 13
        and head[0] == 0x5D
        and head[1:5]
        in (
            b"\x00\x00\x80\x00",
            b"\x00\x00\x00\x01",
            b"\x00\x00\x00\x02",
            b"\x00\x00\x00\x04",
            b"\x00\x00\x10\x00",
            b"\x00\x00\x40\x00",
            b"\x00\x00\x00\x08",
            b"\x00\x00\x00\x10",
            b"\x00\x00\x20\x00",
        )
    )


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto: ir_version (field 1, varint) first in every exporter we know.
    return (
        len(head) >= 4
        and head[0] == 0x08
        and 1 <= head[1] <= 0x20
        and head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA)
    )


def sniff(head: bytes, *, size: int) -> str:
    """The format of a stream from its first bytes (:data:`HEAD_BYTES` suffice).

    Returns one of ``pickle zip npy gzip bz2 xz lzma zlib 7z hdf5 gguf lz4
    joblib-zfile tar safetensors onnx unknown``. ``unknown`` data may still be a
    protocol 0/1 pickle; the scanner tries it.
    """
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        # ``PROTO k`` -- unless the bytes are a safetensors length whose next byte no
        # unpickler would execute (a header of 128 + 256k bytes, k <= 5, begins so).
        if len(head) > 2 and head[2] not in _PICKLE_OPCODES and _is_safetensors(head, size):
            return "safetensors"
        return "pickle"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if _is_tar(head):
        return "tar"
    if _is_safetensors(head, size):
        return "safetensors"
    if _is_lzma_alone(head):
        return "lzma"
    if _looks_like_onnx(head):
        return "onnx"
    if _is_zlib(head):
        return "zlib"
    return "unknown"
