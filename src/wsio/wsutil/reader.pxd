# Types for reader.py when Cython compiles it (pure-Python mode, augmenting .pxd).

from wsio._engine.message cimport MessageState

cdef class Reader:
    cdef public bint check_utf8
    cdef public long long max_frame_size
    cdef public long long max_message_size
    cdef public long long max_fragments
    cdef public object on_continuation
    cdef public object on_intermediate
    cdef public list extensions
    cdef public bint skip_header_check
    cdef public object source
    cdef bint _exact
    cdef bytearray _buffer
    cdef object _view
    cdef object _read
    cdef long long _state
    cdef Py_ssize_t _pos
    cdef Py_ssize_t _end
    cdef object _header
    cdef long long _remaining
    cdef object _mask
    cdef long long _mask_offset
    cdef bint _frame_open
    cdef bint _message_done
    cdef MessageState _message
    cdef bint _checking

    # The per-frame path's own steps: C calls, not Python method calls, when compiled.
    cdef memoryview _consume(self, memoryview chunk)
    cdef Py_ssize_t _read_payload(self, memoryview dst) except -1
    cdef bint _fill(self, Py_ssize_t size) except -1
    cdef object _read_header(self)
