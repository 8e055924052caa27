# Types for http.py when Cython compiles it (pure-Python mode, augmenting .pxd).

cdef class HeadParser:
    cdef public bytearray buffer
    cdef object _view
    cdef bint _response
    cdef bint _growable
    cdef Py_ssize_t _max_line
    cdef Py_ssize_t _max_headers
    cdef Py_ssize_t _max_size
    cdef Py_ssize_t _filled
    cdef public Py_ssize_t consumed
    cdef Py_ssize_t _line
    cdef Py_ssize_t _scan
    cdef int _state
    cdef Py_ssize_t _end
    cdef list _spans
    cdef bytes _start_line
    cdef public bytes method
    cdef public bytes target
    cdef public tuple version
    cdef public int status
    cdef public bytes reason

    cpdef bint advance(self, Py_ssize_t n) except -1
    cdef object _too_long(self)
    cdef int _grow(self, Py_ssize_t need) except -1
    cdef int _replace(self, bytearray buffer) except -1
    cdef int _parse_start(self, Py_ssize_t start, Py_ssize_t end) except -1
    cdef int _parse_field(self, Py_ssize_t start, Py_ssize_t end) except -1
