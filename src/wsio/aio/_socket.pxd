# Types for _socket.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# A connection's transport on asyncio's selector loop: what asyncio's Python
# _SelectorSocketTransport does per connection and per write, in C calls.

from wsio.aio._sockio cimport EAGAIN, EINTR, wsio_recv_into, wsio_send, wsio_send_list


cdef class SocketTransport:
    cdef object __weakref__
    cdef readonly object _loop
    cdef readonly int _fd
    cdef readonly int _conn_lost
    cdef public object _read_ready_cb
    cdef object _sock
    cdef object _protocol
    cdef object _server
    cdef dict _extra
    cdef list _buffer
    cdef Py_ssize_t _buffered
    cdef Py_ssize_t _high
    cdef Py_ssize_t _low
    cdef bint _closing
    cdef bint _eof
    cdef bint _reading_paused
    cdef bint _writing_paused

    cdef int _write_buffered(self, object data) except -1
    cdef int _maybe_pause_protocol(self) except -1
    cdef int _maybe_resume_protocol(self) except -1
    cdef int _force_close(self, object exc) except -1
