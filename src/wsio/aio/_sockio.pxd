# C helpers for the sockets of wsio.aio's compiled modules (_callback, _socket): the
# system calls asyncio's Python transport makes, without building Python objects for
# their arguments or results. Declarations only: no module of its own.

from cpython.object cimport PyObject

cdef extern from *:
    """
    #include <errno.h>
    #include <sys/socket.h>
    #include <sys/uio.h>

    #define WSIO_IOV_MAX 16

    /* The first `count` buffers of a list as iovecs (their views held until
       wsio_release_views): 0, or -1 with an exception set (none held then). */
    static inline int wsio_hold_views(PyObject *bufs, Py_ssize_t count,
                                      Py_buffer *views, struct iovec *iov)
    {
        Py_ssize_t i;
        for (i = 0; i < count; i++) {
            if (PyObject_GetBuffer(PyList_GET_ITEM(bufs, i), &views[i], PyBUF_SIMPLE) < 0) {
                while (i--)
                    PyBuffer_Release(&views[i]);
                return -1;
            }
            iov[i].iov_base = views[i].buf;
            iov[i].iov_len = (size_t)views[i].len;
        }
        return 0;
    }

    static inline void wsio_release_views(Py_buffer *views, Py_ssize_t count)
    {
        Py_ssize_t i;
        for (i = 0; i < count; i++)
            PyBuffer_Release(&views[i]);
    }

    /* One writev(2) of the buffers in a list (at most WSIO_IOV_MAX of them; the
       caller falls back past that): what os.writev does, without its argument
       parsing. Bytes written, 0 when the socket took nothing (EAGAIN, or an error
       asyncio's own write reports), -1 with an exception set, -2 for too many. */
    static inline Py_ssize_t wsio_writev_list(int fd, PyObject *bufs)
    {
        Py_buffer views[WSIO_IOV_MAX];
        struct iovec iov[WSIO_IOV_MAX] = {{0}};  /* (gcc cannot see wsio_hold_views fill it) */
        Py_ssize_t count = PyList_GET_SIZE(bufs), done;
        if (count > WSIO_IOV_MAX)
            return -2;
        if (count == 0)
            return 0;
        if (wsio_hold_views(bufs, count, views, iov) < 0)
            return -1;
        done = writev(fd, iov, (int)count);
        wsio_release_views(views, count);
        return done < 0 ? 0 : done;
    }

    /* One sendmsg(2) of the first buffers of a list (up to WSIO_IOV_MAX): the bytes
       sent, or -2 with errno in *err; -1 with an exception set. MSG_NOSIGNAL: a peer
       that left is EPIPE, not a signal. */
    static inline Py_ssize_t wsio_send_list(int fd, PyObject *bufs, int *err)
    {
        Py_buffer views[WSIO_IOV_MAX];
        struct iovec iov[WSIO_IOV_MAX];
        struct msghdr msg = {0};
        Py_ssize_t count = PyList_GET_SIZE(bufs), done;
        if (count > WSIO_IOV_MAX)
            count = WSIO_IOV_MAX;
        if (wsio_hold_views(bufs, count, views, iov) < 0)
            return -1;
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)count;
        done = sendmsg(fd, &msg, MSG_NOSIGNAL);
        *err = done < 0 ? errno : 0;
        wsio_release_views(views, count);
        return done < 0 ? -2 : done;
    }

    /* send(2) of a buffer: the bytes sent, or -2 with errno in *err; -1 with an
       exception set if it is not a buffer. */
    static inline Py_ssize_t wsio_send(int fd, PyObject *buf, int *err)
    {
        Py_buffer view;
        Py_ssize_t done;
        if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0)
            return -1;
        done = send(fd, view.buf, (size_t)view.len, MSG_NOSIGNAL);
        *err = done < 0 ? errno : 0;
        PyBuffer_Release(&view);
        return done < 0 ? -2 : done;
    }

    /* recv(2) into a writable buffer: the bytes read (0 at the end of the stream);
       -1 with an exception set if the buffer is not writable; -2 on a failed recv,
       its errno in *err. */
    static inline Py_ssize_t wsio_recv_into(int fd, PyObject *buf, int *err)
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
    Py_ssize_t wsio_writev_list(int fd, list bufs) except -1
    Py_ssize_t wsio_send_list(int fd, list bufs, int *err) except -1
    Py_ssize_t wsio_send(int fd, object buf, int *err) except -1
    Py_ssize_t wsio_recv_into(int fd, object buf, int *err) except -1
    enum: EAGAIN  # EWOULDBLOCK is the same number on Linux, macOS and the BSDs
    enum: EINTR
