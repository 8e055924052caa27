# Types for protocol.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# The per-frame path for Cython callers (the asyncio callback layer), with no Python
# object per frame: read into get_buffer(), then add_bytes(n) (which does not parse),
# then next_piece() until it returns 0. Each 1 describes a frame, or a piece of a large
# data frame, in `frame` (its header, framing.pxd's frame_t: fin, rsv, opcode, length,
# key) and piece_data()/piece_length (its payload, unmasked in place; piece_position is
# its offset in the frame's payload, piece_ends_frame whether it is the last), with the
# §5 checks, fragment rules, limits and (for text) UTF-8 already applied. A violation
# raises ProtocolError: call fail(error.close_code, str(error)). handle_piece() does
# with a piece what receive_data() does (events, the automatic Pong, the closing
# handshake); a caller that handles data pieces itself still gives it control frames.

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy, memmove

from wsio._engine.framing cimport check_fields, check_limits, decode_fields, frame_t, put_header
from wsio._engine.mask cimport wsio_mask_xor
from wsio._engine.message cimport MessageState

from wsio._engine.framing cimport cbytes_ptr, uchar_ptr

ctypedef const char *cchar_ptr

cdef extern from *:
    """
    /* The message being assembled, compiled: a bytes object that only the protocol
       holds until it is handed out whole. It grows by doubling with _PyBytes_Resize
       (a realloc: large blocks move by remapping pages, not by copying), so a
       message costs one write of its bytes and no copy when it is handed out. */
    static int wsio_acc_append(PyObject **acc, Py_ssize_t *len, const char *src, Py_ssize_t n)
    {
        Py_ssize_t cap = *acc ? PyBytes_GET_SIZE(*acc) : 0;
        if (*len + n > cap) {
            Py_ssize_t want = 2 * cap;
            if (want < *len + n)
                want = *len + n;
            if (want < 4096)
                want = 4096;  /* never the shared empty bytes, which cannot be resized */
            if (*acc == NULL) {
                *acc = PyBytes_FromStringAndSize(NULL, want);
                if (*acc == NULL)
                    return -1;
            } else if (_PyBytes_Resize(acc, want) < 0) {
                *len = 0;  /* *acc is NULL: the message is gone */
                return -1;
            }
        }
        if (n)
            memcpy(PyBytes_AS_STRING(*acc) + *len, src, (size_t)n);
        *len += n;
        return 0;
    }

    /* The message, cut to its length; the caller owns the reference. */
    static PyObject *wsio_acc_take(PyObject **acc, Py_ssize_t *len)
    {
        PyObject *out;
        if (*acc == NULL)
            return PyBytes_FromStringAndSize(NULL, 0);
        if (_PyBytes_Resize(acc, *len) < 0) {
            *len = 0;
            return NULL;
        }
        out = *acc;
        *acc = NULL;
        *len = 0;
        return out;
    }

    static void wsio_acc_clear(PyObject **acc, Py_ssize_t *len)
    {
        Py_CLEAR(*acc);
        *len = 0;
    }
    """
    int wsio_acc_append(PyObject **acc, Py_ssize_t *len, const char *src, Py_ssize_t n) except -1
    object wsio_acc_take(PyObject **acc, Py_ssize_t *len)
    void wsio_acc_clear(PyObject **acc, Py_ssize_t *len)


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
    cdef bint _filled
    # The frame being parsed, and the piece next_piece() found.
    cdef frame_t frame
    cdef bint _in_frame
    cdef long long _remaining
    cdef long long _frame_pos
    cdef Py_ssize_t piece_offset
    cdef Py_ssize_t piece_length
    cdef long long piece_position
    cdef bint piece_ends_frame
    # The message being received.
    cdef int _flags
    cdef int _allowed_rsv
    cdef int _msg_opcode
    cdef object _msg_codec
    cdef bint _first_piece
    cdef object _acc
    cdef PyObject *_accp
    cdef Py_ssize_t _acc_len
    cdef MessageState _msg
    cdef list _events
    # Sending.
    cdef list _out
    cdef bytearray _tail
    cdef object _send_codec
    cdef bint _send_fragmented
    cdef object _pending_close

    cpdef int add_bytes(self, Py_ssize_t nbytes) except -1
    cdef int next_piece(self) except -1
    cdef int handle_piece(self) except -1
    cdef uchar_ptr piece_data(self)
    cdef int _unmask(self, Py_ssize_t off, Py_ssize_t n, long long pos, bint check) except -1
    cdef int _run(self) except -1
    cdef int _reserve(self, Py_ssize_t size) except -1
    cdef int _data(self) except -1
    cdef int _control(self, int op) except -1
    cdef int _check_bytes(self, bytes data, bint final) except -1
    cdef object _whole_message(self, int kind, Py_ssize_t off, Py_ssize_t n)
    cdef object _message(self, int kind, object data)
    cdef int _append(self, cchar_ptr p, Py_ssize_t n) except -1
    cdef object _assembled(self, int kind)
    cdef int _write_frame(self, bint fin, int opcode, int rsv, object payload) except -1
