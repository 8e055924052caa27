# Types for _callback.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# The receive loop drives wsio.protocol's public C API (protocol.pxd: get_buffer /
# add_bytes / next_piece / the piece fields) with no Python object per frame; sends are
# built by the core in one buffer (single_output) and written straight on the socket
# when the transport's buffer is empty.

from cpython.bytearray cimport PyByteArray_AS_STRING
from posix.unistd cimport write as c_write

from wsio.aio._sockio cimport EAGAIN, EINTR, wsio_recv_into, wsio_writev_list

from wsio._engine.protocol cimport Protocol


cdef class Frame:
    cdef readonly int opcode
    cdef readonly bint fin
    cdef readonly bint frame_end
    cdef Protocol _core
    cdef Py_ssize_t _len
    cdef object _data


cdef class Transport:
    cdef readonly bint is_client
    cdef readonly object subprotocol
    cdef readonly object extensions
    cdef readonly object transport
    cdef public double close_timeout
    cdef public object write_timeout
    cdef Protocol _core
    cdef int _fd
    cdef bint _asyncio_holds
    cdef bint _batch
    cdef bint _soon
    cdef bint _closing
    cdef bint _held
    cdef bint _paused
    cdef object _stream
    cdef object _close_timer
    cdef object _write_timer
    cdef object _loop

    cdef bint _queue_data(self, int opcode, object payload, bint fin, bint may_wait) except -1
    cdef bint _deferrable(self, object payload, Py_ssize_t queued) except -1
    cdef int _flush(self) except -1
    cdef bint _asyncio_empty(self) except -1
    cdef int _write_list(self, list bufs) except -1
    cdef int _after(self) except -1
    cdef int _hold(self) except -1
    cdef int _end(self) except -1


cdef class Stream:
    cdef readonly Transport ws
    cdef readonly object listener
    cdef public object _hs
    cdef public object _factory
    cdef bint _messages
    cdef bint _connected
    cdef bint _hold_close
    cdef bint _frame_pieces
    cdef bint _first
    cdef object _acc
    cdef Protocol _core
    cdef Frame _frame

    cdef int _process(self) except -1
    cdef int _deliver(self, list events) except -1
    cdef bint _collect_piece(self) except -1
    cdef bint _collect_chunks(self, list events, bint ends) except -1
