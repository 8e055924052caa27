# Types for _callback.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# The receive loop drives wsio.protocol's public C API (protocol.pxd: get_buffer /
# add_bytes / next_piece / the piece fields) with no Python object per frame; sends are
# built by the core in one buffer (single_output) and written straight on the socket
# when asyncio's buffer is empty.

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.object cimport PyObject
from posix.unistd cimport write as c_write

cdef extern from *:
    """
    #include <sys/uio.h>

    /* One writev(2) of the buffers in a list (at most WSIO_IOV_MAX of them; the
       caller falls back past that): what os.writev does, without its argument
       parsing. Bytes written, 0 when the socket took nothing (EAGAIN, or an error
       asyncio's own write reports), -1 with an exception set, -2 for too many. */
    #define WSIO_IOV_MAX 16
    static Py_ssize_t wsio_writev_list(int fd, PyObject *bufs)
    {
        Py_buffer views[WSIO_IOV_MAX];
        struct iovec iov[WSIO_IOV_MAX];
        Py_ssize_t count = PyList_GET_SIZE(bufs), i, done;
        if (count > WSIO_IOV_MAX)
            return -2;
        for (i = 0; i < count; i++) {
            if (PyObject_GetBuffer(PyList_GET_ITEM(bufs, i), &views[i], PyBUF_SIMPLE) < 0) {
                while (i--)
                    PyBuffer_Release(&views[i]);
                return -1;
            }
            iov[i].iov_base = views[i].buf;
            iov[i].iov_len = (size_t)views[i].len;
        }
        done = writev(fd, iov, (int)count);
        for (i = 0; i < count; i++)
            PyBuffer_Release(&views[i]);
        return done < 0 ? 0 : done;
    }
    """
    Py_ssize_t wsio_writev_list(int fd, list bufs) except -1

cdef extern from *:
    """
    #include <errno.h>
    #include <sys/socket.h>

    /* recv(2) into a writable buffer: the bytes read (0 at the end of the stream);
       -1 with an exception set if the buffer is not writable; -2 on a failed recv,
       its errno in *err. */
    static Py_ssize_t wsio_recv_into(int fd, PyObject *buf, int *err)
    {
        Py_buffer view;
        Py_ssize_t got;
        if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0)
            return -1;
        got = recv(fd, view.buf, (size_t)view.len, 0);
        *err = got < 0 ? errno : 0;
        PyBuffer_Release(&view);
        return got < 0 ? -2 : got;
    }
    """
    Py_ssize_t wsio_recv_into(int fd, object buf, int *err) except -1
    enum: EAGAIN  # EWOULDBLOCK is the same number on Linux, macOS and the BSDs
    enum: EINTR

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
    cdef bint _closing
    cdef bint _held
    cdef bint _paused
    cdef object _stream
    cdef object _close_timer
    cdef object _write_timer
    cdef object _loop

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
