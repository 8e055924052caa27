"""Masking (RFC 6455 §5.3): XOR of payload bytes with a 4-byte key.

   "Octet i of the transformed data ("transformed-octet-i") is the XOR of octet i of
    the original data ("original-octet-i") with octet at index i modulo 4 of the
    masking key ("masking-key-octet-j"):

      j                   = i MOD 4
      transformed-octet-i = original-octet-i XOR masking-key-octet-j"

Masking and unmasking are the same operation. ``offset`` is the position of the first
byte of the buffer in the masked stream, so a payload can be (un)masked in chunks as it
arrives: a chunk that starts at payload byte ``k`` is ciphered with ``offset=k``.

Compiled, the work is one C loop over 64-bit words (vectorised by the compiler, with an
AVX2 variant chosen at load time on x86-64); uncompiled, it is one XOR of two big
Python ints, so neither path has a per-byte Python loop.
"""

from __future__ import annotations

import os
import threading

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    # C names from mask.pxd (which cimports the CPython and libc ones).
    from cython.cimports.wsio._engine.mask import (  # type: ignore[import-untyped]
        PyBUF_SIMPLE,
        PyBuffer_Release,
        PyByteArray_AS_STRING,
        PyByteArray_GET_SIZE,
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
        PyBytes_GET_SIZE,
        PyObject_GetBuffer,
        buffer_ptr,
        buffer_t,
        key_t,
        memcpy,
        memmove,
        uchar_ptr,
        wsio_mask_pool,
        wsio_mask_xor,
    )

__all__ = ["cipher", "mask_into", "new_mask"]

_Bytes = bytes | bytearray | memoryview
_Writable = bytearray | memoryview


def cipher(buf: _Writable, mask: _Bytes, offset: int = 0) -> None:
    """XOR ``buf`` in place with the 4-byte ``mask``; ``buf[0]`` is byte ``offset`` of the stream.

    ``buf`` is a bytearray or a writable C-contiguous memoryview; nothing is kept.
    """
    if cython.compiled:
        key = cython.declare(key_t)
        view = cython.declare(buffer_t)
        off: cython.Py_ssize_t = offset
        _read_mask(mask, key)
        if type(buf) is bytearray:
            # The common case, without the buffer export and release (no Python code
            # runs meanwhile, so the bytearray cannot be resized under the loop).
            data = cython.cast(uchar_ptr, PyByteArray_AS_STRING(buf))
            wsio_mask_xor(data, data, PyByteArray_GET_SIZE(buf), key, off)
            return
        _get_writable(buf, cython.address(view))
        wsio_mask_xor(
            cython.cast(uchar_ptr, view.buf),
            cython.cast(uchar_ptr, view.buf),
            view.len,
            key,
            off,
        )
        PyBuffer_Release(cython.address(view))
    else:
        key_bytes = _pure_key(mask, offset)
        target = _pure_writable(buf)
        n = len(target)
        if n:
            target[:] = _pure_xor(target, key_bytes, n)


def mask_into(dest: _Writable, src: _Bytes, mask: _Bytes, offset: int = 0) -> None:
    """Write ``src`` XOR ``mask`` into ``dest[:len(src)]`` (one pass: copy while masking).

    ``dest`` is writable and at least as long as ``src``; it may be ``src`` itself, and
    if the two overlap otherwise the result is as if ``src`` were copied first. Nothing
    is kept.
    """
    if cython.compiled:
        key = cython.declare(key_t)
        source = cython.declare(buffer_t)
        target = cython.declare(buffer_t)
        off: cython.Py_ssize_t = offset
        n: cython.Py_ssize_t
        d: uchar_ptr
        s: uchar_ptr
        _read_mask(mask, key)
        PyObject_GetBuffer(src, cython.address(source), PyBUF_SIMPLE)
        try:
            _get_writable(dest, cython.address(target))
            try:
                n = source.len
                if target.len < n:
                    raise ValueError(f"mask_into(): dest holds {target.len} bytes, src has {n}")
                d = cython.cast(uchar_ptr, target.buf)
                s = cython.cast(uchar_ptr, source.buf)
                if d != s and d < s + n and s < d + n:
                    # Partial overlap: the word loop would read bytes it already
                    # wrote, so copy first (memmove is overlap-safe), then mask in place.
                    memmove(d, s, n)
                    s = d
                wsio_mask_xor(d, s, n, key, off)
            finally:
                PyBuffer_Release(cython.address(target))
        finally:
            PyBuffer_Release(cython.address(source))
    else:
        key_bytes = _pure_key(mask, offset)
        source_view = _pure_readable(src)
        target_view = _pure_writable(dest)
        n = len(source_view)
        if len(target_view) < n:
            raise ValueError(f"mask_into(): dest holds {len(target_view)} bytes, src has {n}")
        if n:
            target_view[:n] = _pure_xor(source_view, key_bytes, n)


# Masking keys.
#
# RFC 6455 §5.3: "The masking key is a 32-bit value chosen at random by the client when
# sending a frame. [...] The masking key needs to be unpredictable; thus, the masking key
# MUST be derived from a strong source of entropy, and the masking key for a given frame
# MUST NOT make it simple for a server or proxy to predict the masking key for a
# subsequent frame."
#
# The entropy is os.urandom's, drawn _POOL_SIZE bytes at a time and handed out 4 bytes
# per frame, so a frame costs no system call. Compiled, there is one pool per process (a
# C array in this module): a key is taken with the GIL held and no Python code between
# the check and the copy, so two threads never get the same bytes; a refill may release
# the GIL inside os.urandom, but it replaces the whole pool before any key is taken from
# it. Uncompiled, each thread has its own pool. A forked child drops what its parent
# left (os.register_at_fork), so the two never send the same keys.

_POOL_SIZE = cython.declare(cython.Py_ssize_t, 4096)
_pool_pos = cython.declare(cython.Py_ssize_t, 4096)  # compiled: the next key's offset


class _ThreadPool(threading.local):
    """Pure mode: this thread's os.urandom bytes and the next one to hand out."""

    def __init__(self) -> None:
        self.data = b""
        self.pos = 0


_thread_pool = _ThreadPool()


def new_mask() -> bytes:
    """A fresh, unpredictable 4-byte masking key from the os.urandom pool (a new object)."""
    if cython.compiled:
        key = PyBytes_FromStringAndSize(cython.NULL, 4)
        take_mask(cython.cast(uchar_ptr, PyBytes_AS_STRING(key)))
    else:
        pool = _thread_pool
        pos = pool.pos
        if pos >= len(pool.data):
            pool.data = os.urandom(_POOL_SIZE)
            pos = 0
        pool.pos = pos + 4
        key = pool.data[pos : pos + 4]
    return key


def _drop_pool() -> None:
    # After fork, in the child: the parent may still hand out the keys left in the pool.
    global _pool_pos, _thread_pool
    _pool_pos = _POOL_SIZE
    _thread_pool = _ThreadPool()


os.register_at_fork(after_in_child=_drop_pool)


# Compiled-only helpers (declared cdef in mask.pxd).


def take_mask(out: uchar_ptr) -> cython.int:
    """Copy the next 4 bytes of the process's key pool to ``out``, refilling it first
    from os.urandom when it is used up (C callers: protocol.pxd's client sends)."""
    global _pool_pos
    if _pool_pos + 4 > _POOL_SIZE:
        fresh: bytes = os.urandom(_POOL_SIZE)  # may release the GIL; nothing taken yet
        memcpy(wsio_mask_pool(), PyBytes_AS_STRING(fresh), _POOL_SIZE)
        _pool_pos = 0
    memcpy(out, wsio_mask_pool() + _pool_pos, 4)
    _pool_pos += 4
    return 0


def _read_mask(mask: object, out: uchar_ptr) -> cython.int:
    """Copy the 4 mask bytes into ``out``; ValueError unless ``mask`` has exactly 4."""
    view = cython.declare(buffer_t)
    if type(mask) is bytes and PyBytes_GET_SIZE(mask) == 4:
        memcpy(out, PyBytes_AS_STRING(mask), 4)
        return 0
    PyObject_GetBuffer(mask, cython.address(view), PyBUF_SIMPLE)
    size: cython.Py_ssize_t = view.len
    if size == 4:
        memcpy(out, view.buf, 4)
    PyBuffer_Release(cython.address(view))
    if size != 4:
        raise ValueError(f"mask must be 4 bytes, got {size}")
    return 0


def _get_writable(buf: object, view: buffer_ptr) -> cython.int:
    """Fill ``view`` with ``buf``'s bytes; TypeError if ``buf`` is read-only."""
    # PyBUF_SIMPLE: one C-contiguous run of bytes (CPython raises BufferError otherwise).
    # The read-only check is ours, so that bytes gets the TypeError CPython's own
    # "read-write bytes-like object" APIs (socket.recv_into, readinto) give.
    PyObject_GetBuffer(buf, view, PyBUF_SIMPLE)
    if view.readonly:
        PyBuffer_Release(view)
        raise TypeError(_read_only_message(buf))
    return 0


# Pure-Python helpers.


def _read_only_message(buf: object) -> str:
    kind = type(buf).__name__
    return f"need a writable buffer (bytearray or writable memoryview), got read-only {kind}"


def _pure_key(mask: _Bytes, offset: int) -> bytes:
    """The 4 key bytes rotated so that the first is the one for stream byte ``offset``."""
    key = mask if type(mask) is bytes else bytes(_pure_readable(mask))
    if len(key) != 4:
        raise ValueError(f"mask must be 4 bytes, got {len(key)}")
    shift = offset & 3
    return key[shift:] + key[:shift]


def _pure_readable(buf: _Bytes) -> memoryview:
    """A flat byte view of ``buf``: BufferError unless it is C-contiguous, like CPython's."""
    view = memoryview(buf)
    if not view.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not C-contiguous")
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _pure_writable(buf: _Writable) -> memoryview:
    view = _pure_readable(buf)
    if view.readonly:
        raise TypeError(_read_only_message(buf))
    return view


def _pure_xor(data: memoryview, key: bytes, n: int) -> bytes:
    """``data[:n]`` XOR the repeated ``key``, as two integers XORed at once."""
    stream = key * (n >> 2) + key[: n & 3]
    value = int.from_bytes(data[:n], "little") ^ int.from_bytes(stream, "little")
    return value.to_bytes(n, "little")
