# Types for reader.py when Cython compiles it (pure-Python mode, augmenting .pxd).

from cpython.buffer cimport PyBUF_WRITE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.memoryview cimport PyMemoryView_FromMemory

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
    # The longest frame read whole on this connection: a longer one grows as it arrives.
    cdef long long _proven

    # The per-frame path's own steps: C calls, not Python method calls, when compiled.
    cdef memoryview _consume(self, memoryview chunk)
    cdef bytes _read_frame_rest(self)
    cdef Py_ssize_t _read_payload(self, memoryview dst) except -1
    cdef bint _fill(self, Py_ssize_t size, Py_ssize_t most=*) except -1
    cdef object _read_header(self)

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EAGAIN, EINTR, errno

from wsio._engine.mask cimport wsio_mask_xor

ctypedef unsigned char *uchar_ptr

cdef extern from "<errno.h>":
    const int EWOULDBLOCK  # EAGAIN's twin on some systems

cdef extern from *:
    """
    /* read_plain_message's system calls on a plain socket's descriptor: a look at the
       header without taking it (MSG_PEEK), then header and payload in one readv, each
       into its own buffer. Not on Windows: there the socket's own methods do it all. */
    #ifdef _WIN32
    #include <errno.h>
    static Py_ssize_t wsio_sock_peek(int fd, unsigned char *p, Py_ssize_t n)
    { (void)fd; (void)p; (void)n; errno = EAGAIN; return -1; }
    static Py_ssize_t wsio_sock_readv2(int fd, unsigned char *p1, Py_ssize_t n1,
                                       unsigned char *p2, Py_ssize_t n2)
    { (void)fd; (void)p1; (void)n1; (void)p2; (void)n2; errno = EAGAIN; return -1; }
    #else
    #include <sys/socket.h>
    #include <sys/uio.h>
    static Py_ssize_t wsio_sock_peek(int fd, unsigned char *p, Py_ssize_t n)
    { return (Py_ssize_t)recv(fd, p, (size_t)n, MSG_PEEK); }
    static Py_ssize_t wsio_sock_readv2(int fd, unsigned char *p1, Py_ssize_t n1,
                                       unsigned char *p2, Py_ssize_t n2)
    {
        struct iovec iov[2];
        iov[0].iov_base = p1;
        iov[0].iov_len = (size_t)n1;
        iov[1].iov_base = p2;
        iov[1].iov_len = (size_t)n2;
        return (Py_ssize_t)readv(fd, iov, 2);
    }
    #endif
    """
    Py_ssize_t wsio_sock_peek(int fd, unsigned char *p, Py_ssize_t n) nogil
    Py_ssize_t wsio_sock_readv2(int fd, unsigned char *p1, Py_ssize_t n1, unsigned char *p2, Py_ssize_t n2) nogil

cdef Py_ssize_t _read_some(object read, int fd, uchar_ptr p1, Py_ssize_t n1, uchar_ptr p2, Py_ssize_t n2) except -2
