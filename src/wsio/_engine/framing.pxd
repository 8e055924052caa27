# Types for framing.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# frame_t, decode_fields and check_fields are the per-frame C path that FrameParser and
# wsio._engine.protocol share (cimport them): a header decoded straight from a bytearray
# into a struct and checked on plain ints, no Python object made.

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memcpy

cdef struct frame_t:
    bint fin
    int rsv
    int opcode
    bint masked
    unsigned char key[4]
    long long length
    int header_size

ctypedef frame_t *frame_ptr
ctypedef unsigned char *uchar_ptr
ctypedef const unsigned char *cbytes_ptr


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
    cdef frame_t _fields
    cpdef object next_frame(self)
    cdef void _reserve(self, Py_ssize_t size) except *


cdef Py_ssize_t decode_fields(bytearray buf, Py_ssize_t pos, Py_ssize_t end, frame_ptr f) except -1
cdef int check_fields(int opcode, bint fin, int rsv, bint masked, long long length, int state, int allowed_rsv) except -1
cpdef int check_limits(long long length, long long max_frame_size, long long message_size, long long max_message_size, long long fragments, long long max_fragments) except -1
cdef int put_header(uchar_ptr p, bint fin, int opcode, int rsv, long long length, bint masked, cbytes_ptr key) noexcept nogil
cdef void _fill_header(Header header, frame_ptr f) except *
