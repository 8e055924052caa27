# Types for writer.py when Cython compiles it (pure-Python mode, augmenting .pxd).

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

from wsio._engine.framing cimport cbytes_ptr, put_header, uchar_ptr
from wsio._engine.mask cimport buffer_t, key_t, take_mask, wsio_mask_xor
from wsio._engine.message cimport MessageState

cdef class Writer:
    cdef public object dest
    cdef public bint fragmenting
    cdef public int op
    cdef bytearray _buffer
    cdef object _view
    cdef list _extensions
    cdef bytearray _scratch
    cdef bint _client
    cdef long long _state
    cdef Py_ssize_t _n
    cdef MessageState _message
    cdef int _flags
    cdef bint _dirty


cdef class ControlWriter:
    cdef Writer _writer
