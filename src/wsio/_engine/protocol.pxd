# Types for protocol.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# The per-frame path for Cython callers (the asyncio callback layer): after bytes go in
# (receive_data / get_buffer + buffer_updated with `_run` not wanted, call `_feed`), call
# `_next()` until it returns 0. Each 1 describes a frame, or a piece of a large data
# frame in streaming mode, in `_f` (the decoded header, framing.pxd's frame_t) and
# `_p_off`/`_p_len` (its payload, unmasked in place, at `_buf` + `_p_off`), with the §5
# checks, fragment rules, limits and (for text) UTF-8 already applied. A violation
# raises ProtocolError (fail the connection with its close_code).

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy, memmove

from wsio._engine.framing cimport check_fields, check_limits, decode_fields, frame_t, put_header
from wsio._engine.mask cimport wsio_mask_xor
from wsio._engine.utf8 cimport _scan, utf8_state

from wsio._engine.framing cimport cbytes_ptr, uchar_ptr


cdef class TextMessage:
    cdef readonly object data


cdef class BinaryMessage:
    cdef readonly object data


cdef class Chunk:
    cdef readonly int opcode
    cdef readonly object data
    cdef readonly bint frame_finished
    cdef readonly bint message_finished


cdef class Ping:
    cdef readonly object data


cdef class Pong:
    cdef readonly object data


cdef class Close:
    cdef readonly int code
    cdef readonly object reason


cdef class Protocol:
    # Policies.
    cdef readonly bint is_client
    cdef readonly long long max_frame_size
    cdef readonly long long max_message_size
    cdef readonly long long max_fragments
    cdef public bint auto_pong
    cdef readonly bint streaming
    cdef readonly bint decode_text
    cdef readonly tuple extensions
    # Connection state.
    cdef int _state
    cdef readonly object close_initiator
    cdef readonly object close_sent
    cdef readonly object close_rcvd
    cdef readonly object error
    cdef bint _reading
    # Receive buffer: bytes [_start, _end) of _buf are received and not yet parsed.
    cdef bytearray _buf
    cdef object _whole
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    # The frame being parsed, and the piece `_next` found.
    cdef frame_t _f
    cdef bint _in_frame
    cdef long long _remaining
    cdef long long _frame_pos
    cdef Py_ssize_t _p_off
    cdef Py_ssize_t _p_len
    cdef long long _p_pos
    cdef bint _p_frame_done
    # The message being received.
    cdef int _flags
    cdef int _allowed_rsv
    cdef int _msg_opcode
    cdef object _msg_codec
    cdef bint _msg_check
    cdef long long _msg_size
    cdef long long _fragments
    cdef bint _first_piece
    cdef bytearray _acc
    cdef utf8_state _utf8
    cdef object _validator
    cdef list _events
    # Sending.
    cdef list _out
    cdef bytearray _tail
    cdef object _send_codec
    cdef bint _send_fragmented
    cdef object _pending_close

    cdef int _next(self) except -1
    cdef int _unmask(self, Py_ssize_t off, Py_ssize_t n, long long pos, bint check) except -1
    cdef int _check_text_end(self) except -1
    cdef int _run(self) except -1
    cdef int _reserve(self, Py_ssize_t size) except -1
    cdef int _data(self) except -1
    cdef int _control(self, int op) except -1
    cdef int _check_bytes(self, bytes data, bint final) except -1
    cdef object _whole_message(self, int kind, Py_ssize_t off, Py_ssize_t n)
    cdef object _message(self, int kind, object data)
    cdef int _write_frame(self, bint fin, int opcode, int rsv, object payload) except -1
