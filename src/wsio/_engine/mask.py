"""Masking (RFC 6455 §5.3): XOR of payload bytes with a 4-byte key, in place.

   "The masking key is a 32-bit value chosen at random by the client. ...
    Octet i of the transformed data ("transformed-octet-i") is the XOR of octet i of
    the original data ("original-octet-i") with octet at index i modulo 4 of the
    masking key ("masking-key-octet-j")"

Masking and unmasking are the same operation. ``offset`` is the position of ``buf[0]``
in the masked stream, so a payload can be unmasked in chunks as it arrives.
"""

from __future__ import annotations

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython


def cipher(buf: bytearray | memoryview, mask: bytes, offset: int = 0) -> None:
    """XOR ``buf`` in place with ``mask`` (4 bytes), starting at ``offset`` into the mask."""
    n: cython.Py_ssize_t = len(buf)
    if n == 0:
        return
    if len(mask) != 4:
        raise ValueError("mask must be 4 bytes")
    if cython.compiled:
        view: cython.uchar[::1] = buf
        key: cython.uchar[4]
        i: cython.Py_ssize_t
        for i in range(4):
            key[i] = mask[(i + offset) & 3]
        for i in range(n):
            view[i] ^= key[i & 3]
    else:
        shift = offset & 3
        key_bytes = bytes(mask[shift:]) + bytes(mask[:shift])
        repeated = key_bytes * (n // 4 + 1)
        data = int.from_bytes(buf, "little") ^ int.from_bytes(repeated[:n], "little")
        buf[:] = data.to_bytes(n, "little")
