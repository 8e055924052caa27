# Types for message.py when Cython compiles it (pure-Python mode, augmenting .pxd).
#
# MessageState is the received data message's bookkeeping that the protocol core and
# wsutil.Reader share (cimport it): limits, the fragmented flag, UTF-8 across frames.
# take/feed/end are cpdef: wsutil.Writer and wsflate's stream (plain Python) use them too.

cimport cython

from wsio._engine.framing cimport check_limits
from wsio._engine.utf8 cimport _check, _scan, cbytes_ptr, utf8_state


@cython.final
cdef class MessageState:
    cdef public long long size
    cdef public long long fragments
    cdef public bint text
    cdef utf8_state _utf8       # compiled path
    cdef object _validator      # pure path

    cdef int check(self, int opcode, long long length, long long max_frame_size, long long max_message_size, long long max_fragments) except -1
    cpdef int take(self, int opcode, bint fin, long long length, int flags, bint text) noexcept
    cpdef int feed(self, object data) except -1
    cdef int feed_ptr(self, cbytes_ptr p, Py_ssize_t n) except -1
    cpdef int end(self) except -1
