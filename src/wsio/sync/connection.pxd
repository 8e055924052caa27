# Types for connection.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# Connection stays a Python class (its users may subclass it or set attributes); the
# per-message work is typed: its methods hold the core in a `Protocol` local and call
# its C API (protocol.pxd: get_buffer/add_bytes/next_piece/piece_data/handle_piece/
# take_events, send_data/single_output/clear_output) in _Wire, a cdef class holding
# what a message touches, so a message costs no Python-level attribute lookup.

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyObject
from cpython.pythread cimport (
    PY_LOCK_ACQUIRED,
    PY_LOCK_INTR,
    PyLockStatus,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from cpython.unicode cimport PyUnicode_DecodeUTF8

from libc.string cimport memcpy

from wsio._engine.framing cimport uchar_ptr
from wsio._engine.mask cimport buffer_t, key_t, wsio_mask_xor
from wsio._engine.protocol cimport Protocol, wsio_acc_append, wsio_acc_clear, wsio_acc_take

cdef extern from "pythread.h":
    # Not in Cython's cpython/pythread.pxd: the timed acquire (microseconds, < 0 for ever;
    # intr_flag 1: a signal ends the wait with PY_LOCK_INTR).
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock, long long, int) nogil

cdef int _ENDED, _FLUSH
cdef Py_ssize_t _MASK_BLOCK


cdef class _Lock:
    cdef PyThread_type_lock _lock
    cdef object _py
    cdef bint _held

    cdef bint take(self, double timeout) except -1
    cdef int give(self) except -1


cdef class _Wire:
    cdef object conn
    cdef Protocol core
    cdef object queue
    cdef _Lock write_lock
    cdef _Lock proto_lock
    cdef _Lock read_lock
    cdef object claim
    cdef object unclaim
    cdef object locked
    cdef bint reader
    cdef object put
    cdef object take
    cdef object sendall
    cdef object recv_into
    cdef bint mask_blocks
    cdef public bint answer_pending
    cdef public bint closed
    cdef public object stream
    cdef public bint partial
    cdef public list pings
    cdef public list pongs
    cdef int _kind
    cdef object _acc
    cdef PyObject *_accp
    cdef Py_ssize_t _acc_len

    cpdef int send(self, int opcode, object data) except -1
    cdef int _send_masked(self, int opcode, object data) except -1
    cpdef object next(self, object timeout)
    cpdef bint take_reader(self)
    cpdef int drop_reader(self) except -1
    cpdef bint has_reader(self)
    cpdef int read(self, object deadline) except -1
    cpdef int parsed(self, Py_ssize_t n) except -1
    cdef int parse(self, Py_ssize_t n) except -1
    cdef int _events(self, list events) except -1
    cpdef bint arriving(self)
    cpdef object take_arriving(self)
    cdef int _data(self, uchar_ptr p, Py_ssize_t n, object data, bint done) except -1
    cdef bytes _take(self)
