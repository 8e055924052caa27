# Types for framing.py when Cython compiles it (pure-Python mode, augmenting .pxd).

cdef class Header:
    cdef public bint fin
    cdef public int rsv
    cdef public int opcode
    cdef public bint masked
    cdef public object mask
    cdef public long long length


cdef class Frame:
    cdef public Header header
    cdef public object payload


cdef class FrameParser:
    cdef public Py_ssize_t max_frame_size
    cdef public bint unmask
    cdef bytearray _buffer
    cdef object _view
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef Py_ssize_t _needed
    cpdef object next_frame(self)
    cdef void _reserve(self, Py_ssize_t size) except *
