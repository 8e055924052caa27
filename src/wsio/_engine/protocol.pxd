# Types for protocol.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# The C-level API for I/O layers written in Cython (cimport Protocol; wsio.aio's callback
# level is one): everything below without a leading underscore is public and documented
# here, with how long what it returns stays valid. Underscored members are the core's
# own and are not touched from outside.
#
# Reading, with no Python object per frame:
#   view = get_buffer(-1); <read n bytes into it>; add_bytes(n)
#   while reading and next_piece(): <use frame, piece_*>; handle_piece() or not
# Each 1 from next_piece() describes a frame, or a piece of a data frame larger than
# whole_frame_max, in `frame` (framing.pxd's frame_t: fin, rsv, opcode, length, key) and
# piece_data()/piece_view()/piece_length (its payload, unmasked in place; piece_position
# is its offset in the frame's payload, piece_ends_frame whether it is the last), with
# the §5 checks, fragment rules, limits and (for uncompressed text) UTF-8 already
# applied, the end of a text message included. A whole message over 64 KiB that stays
# bytes (binary, or text without decode_text) is read into its own bytes object, not the
# read buffer: get_buffer() then gives the rest of it, and its piece_data()/piece_view()
# point there (a writable view that keeps it alive), valid just as long. A violation raises ProtocolError: call
# fail_with_error(error). handle_piece() does with a piece what receive_data() does
# (events, the automatic Pong, the closing handshake); a caller that handles
# uncompressed data pieces itself still gives it control frames and compressed pieces
# (piece_inflates()), then takes the events with take_events().
#
# Writing: send_data()/send_ping()/... queue frames. single_output() is everything
# queued when it is one buffer (the common case: short frames, header and payload
# together); write it and clear_output(). Otherwise (long payloads queued as their own
# buffers, or a Close to append) data_to_send() hands the list over.

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy, memmove

from wsio._engine.framing cimport check_fields, check_limits, decode_fields, frame_t, put_header
from wsio._engine.mask cimport buffer_ptr, buffer_t, key_t, take_mask, wsio_mask_xor
from wsio._engine.message cimport MessageState
from wsio._engine.utf8 cimport wsio_utf8_str

from wsio._engine.framing cimport cbytes_ptr, uchar_ptr

ctypedef const char *cchar_ptr

cdef extern from *:
    """
    /* The message being assembled, compiled: a bytes object that only the protocol
       holds until it is handed out whole. It grows by doubling with _PyBytes_Resize
       (a realloc: large blocks move by remapping pages, not by copying), so a
       message costs one write of its bytes and no copy when it is handed out. `inline`:
       the modules that cimport this file (wsio.aio's callback level) call none of it. */
    static inline int wsio_acc_append(PyObject **acc, Py_ssize_t *len, const char *src, Py_ssize_t n)
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
    static inline PyObject *wsio_acc_take(PyObject **acc, Py_ssize_t *len)
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

    static inline void wsio_acc_clear(PyObject **acc, Py_ssize_t *len)
    {
        Py_CLEAR(*acc);
        *len = 0;
    }

    /* Empty the send bytearray. PyByteArray_Resize(b, 0) would give its block back (a
       bytearray shrinks to its size when that falls under half its allocation), and
       the next frame would allocate it again: a block of at most `keep` bytes is kept
       (an idle connection holds no more than that). */
    static inline int wsio_bytearray_clear(PyObject *b, Py_ssize_t keep)
    {
        PyByteArrayObject *o = (PyByteArrayObject *)b;
        if (o->ob_alloc <= keep && o->ob_exports == 0 && o->ob_bytes != NULL
                && o->ob_start == o->ob_bytes) {
            Py_SET_SIZE(o, 0);
            o->ob_bytes[0] = 0;
            return 0;
        }
        return PyByteArray_Resize(b, 0);
    }
    """
    int wsio_acc_append(PyObject **acc, Py_ssize_t *len, const char *src, Py_ssize_t n) except -1
    object wsio_acc_take(PyObject **acc, Py_ssize_t *len)
    void wsio_acc_clear(PyObject **acc, Py_ssize_t *len)
    int wsio_bytearray_clear(object b, Py_ssize_t keep) except -1


# A writable buffer over a bytes object that no one else holds yet: what a whole message
# is read into before its event hands the bytes out (see Protocol._target).
cdef class _Window:
    cdef object target
    cdef Py_ssize_t length


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
    # True while input is parsed: False after a Close frame, a failure, or the end of
    # the stream (nothing more is read; stop calling next_piece()).
    cdef readonly bint reading
    # Receive buffer: bytes [_start, _end) of _buf are received and not yet parsed.
    cdef bytearray _buf
    cdef object _whole
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef bint _filled
    # Data frames up to this payload length are taken whole: once one's header has
    # arrived, the buffer grows with its bytes (see _AHEAD in protocol.py), and
    # next_piece() gives it as one piece once it is all in (text is unmasked and checked as it arrives, so bad UTF-8
    # still fails fast). Longer frames come in pieces as they arrive. 0 with
    # streaming=True (a streaming consumer never needs a frame-sized buffer); an I/O
    # layer that wants whole frames sets it (at most max_frame_size counts).
    cdef public long long whole_frame_max
    # A whole message over 64 KiB (one FIN frame, uncompressed, kept as bytes) up to
    # this length is read into its own bytes object (compiled; see get_buffer), whatever
    # whole_frame_max, streaming too (its one piece is the message: piece_bytes()). 0
    # (the default): only up to whole_frame_max and not streaming. Its pages are
    # touched only as bytes arrive, as the read buffer's.
    cdef public long long direct_max
    # The frame being parsed, and the piece next_piece() found: valid until the next
    # next_piece() (the payload until the next get_buffer()/receive_data()).
    cdef frame_t frame
    cdef bint _in_frame
    cdef bint _whole_pending
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
    # The message's text is UTF-8 checked as it arrives (so its str is built unchecked).
    cdef bint _msg_checked
    cdef bint _first_piece
    cdef object _acc
    cdef PyObject *_accp
    cdef Py_ssize_t _acc_len
    cdef MessageState _msg
    # Compiled: a whole message (one FIN frame, uncompressed, kept as bytes) longer than
    # _DIRECT_MIN is read straight into the bytes object its event will hold. _direct:
    # the current frame is there, not in _buf; _tview is a writable view of all of it;
    # _fill counts the bytes written into it (_frame_pos those unmasked and checked).
    cdef bint _direct
    # The frame taken whole may be read into its event's bytes once room for all of it
    # is made; _proven: the longest frame this connection delivered whole (it gets its
    # room at the header: see _AHEAD in protocol.py).
    cdef bint _direct_ok
    cdef long long _proven
    cdef object _target
    cdef object _tview
    cdef Py_ssize_t _fill
    cdef list _events
    # Sending.
    cdef list _out
    cdef bytearray _tail
    cdef object _send_codec
    # Payloads up to this length are copied (a client's: masked) behind their header in
    # one output buffer (single_output()); longer ones are a buffer of their own in
    # data_to_send() (a server's not copied). 4 KiB unless the I/O layer sets it.
    cdef public Py_ssize_t inline_max
    # The output buffer's block kept between messages (clear_output): 512 bytes unless
    # the I/O layer sets it (an idle connection holds no more than this).
    cdef public Py_ssize_t keep_output
    cdef bint _send_fragmented
    cdef object _pending_close

    # -- reading --
    # The writable view to read the next bytes into (asyncio.BufferedProtocol's
    # get_buffer): valid until add_bytes()/buffer_updated(); calling it ends the life of
    # every piece and view handed out before. Its size is the protocol's choice.
    cpdef object get_buffer(self, Py_ssize_t sizehint=*)
    # Record that nbytes were written into get_buffer()'s view, without parsing them.
    cpdef int add_bytes(self, Py_ssize_t nbytes) except -1
    # 1 when a frame or piece is ready (see above), 0 when more bytes are needed.
    cdef int next_piece(self) except -1
    # Events, the automatic Pong and the closing handshake for the current piece.
    cdef int handle_piece(self) except -1
    # The current piece's payload: a pointer (compiled) or a memoryview into the read
    # buffer, piece_length bytes, unmasked; valid until the next get_buffer() or
    # receive_data().
    cdef uchar_ptr piece_data(self)
    cpdef object piece_view(self)
    # The bytes object the current piece fills whole when it is a message read in place
    # (compiled, a whole message over 64 KiB kept as bytes), or None: the caller may keep
    # it as the message (no copy); the core writes no more into it.
    cpdef object piece_bytes(self)
    # True while a message is read in place and has not all arrived.
    cdef bint reading_direct(self) noexcept
    # While one is, go on with it in pieces as they arrive (as a frame longer than
    # whole_frame_max) and return the bytes of it that arrived so far (owned, unmasked,
    # checked); else None. For an I/O layer whose reader now wants pieces.
    cpdef object leave_direct(self)
    # True when the current data piece belongs to a compressed message: handle_piece()
    # inflates it (and checks inflated text) into Chunk events, owned bytes.
    cdef bint piece_inflates(self) noexcept
    # The events handle_piece() produced since the last call (the list is the
    # caller's), or None when there are none (no list made).
    cdef list take_events(self)
    # Fail the connection for an exception raised while parsing or in a callback: a
    # ProtocolError fails with its close_code, anything else with 1011; `error` keeps it.
    cpdef int fail_with_error(self, object error) except -1
    # -- writing --
    # Queue a data frame: opcode 1 (text: UTF-8 bytes), 2 (binary), 0 (continuation).
    # The payload is referenced until data_to_send()/single_output() hands it out.
    cpdef int send_data(self, int opcode, object data, bint fin=*, object compress=*) except -1
    # The header of a whole uncompressed data frame (opcode 1 or 2, FIN) of `length`
    # bytes that the caller writes itself at once, right after it: nothing is queued
    # (the checks are send_data's). A client gets the frame's fresh masking key in
    # `key` (4 bytes) and masks the payload as it writes it (in cache-sized blocks).
    cdef bytes data_header(self, int opcode, Py_ssize_t length, uchar_ptr key)
    # Everything queued, when it is one buffer: the core's own bytearray (empty when
    # nothing is queued), valid until the next send or clear_output(); None when
    # data_to_send() must be called (long payloads queued as their own buffers, or a
    # Close that answers the peer's or fails the connection waiting to be appended).
    cdef bytearray single_output(self)
    # Empty the buffer single_output() returned, once written (its memory is kept).
    cdef int clear_output(self) except -1
    # True while a Close (answering the peer's, or failing the connection) is queued
    # for the next data_to_send(): what an I/O layer may hold back until the messages
    # that came before it are answered (RFC 6455 §5.5.1).
    cdef bint close_pending(self) noexcept
    # True once no more frames will be exchanged (the state is CLOSED).
    cpdef bint close_expected(self)
    # -- the core's own --
    cdef int _unmask(self, Py_ssize_t off, Py_ssize_t n, long long pos, bint check) except -1
    cdef int _unmask_at(self, uchar_ptr p, Py_ssize_t n, long long pos, bint check) except -1
    cdef int _grow_pending(self) except -1
    cdef int _start_direct(self, Py_ssize_t start) except -1
    cdef object _direct_view(self)
    cdef int _take_direct(self) except -1
    cdef Py_ssize_t _feed_direct(self, object data) except -1
    cdef int _drop_direct(self) except -1
    cdef int _run(self) except -1
    cdef int _reserve(self, Py_ssize_t size, bint fresh=*) except -1
    cdef int _shrink(self) except -1
    cdef int _take_whole(self, Py_ssize_t start, Py_ssize_t avail) except -1
    cdef int _data(self) except -1
    cdef int _control(self, int op) except -1
    cdef int _check_bytes(self, bytes data, bint final) except -1
    cdef object _whole_message(self, int kind, Py_ssize_t off, Py_ssize_t n)
    cdef object _message(self, int kind, object data)
    cdef int _append(self, cchar_ptr p, Py_ssize_t n) except -1
    cdef object _assembled(self, int kind)
    cdef int _write_frame(self, bint fin, int opcode, int rsv, object payload) except -1
    cdef int _write_frame_c(self, bint fin, int opcode, int rsv, object payload) except -1
