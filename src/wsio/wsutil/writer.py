"""Writer: a message written as a byte stream, sent as frames, one write per frame."""

from __future__ import annotations

from wsio._engine.framing import (
    MAX_CONTROL_PAYLOAD,
    MAX_HEADER_SIZE,
    STATE_CLIENT_SIDE,
    STATE_FRAGMENTED,
    Frame,
    Header,
    encode_header_into,
    header_size,
)
from wsio._engine.mask import cipher, mask_into
from wsio.exceptions import LocalProtocolError
from wsio.frameio import LockedSink, Sink, write_all, write_frame
from wsio.frames import OpCode, State, new_mask
from wsio.wsutil.extension import SendExtension

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    # The protocol core's message bookkeeping and its frame-building C path (put_header,
    # take_mask, wsio_mask_xor), as C calls (writer.pxd cimports them).
    from cython.cimports.wsio._engine.message import (  # type: ignore[import-untyped,unreachable]
        MessageState,
    )
    from cython.cimports.wsio.wsutil.writer import (  # type: ignore[import-untyped]
        PyBUF_SIMPLE,
        PyBuffer_Release,
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
        PyObject_GetBuffer,
        buffer_t,
        cbytes_ptr,
        key_t,
        memcpy,
        put_header,
        take_mask,
        uchar_ptr,
        wsio_mask_xor,
    )
else:
    from wsio._engine.message import MessageState

__all__ = ["DEFAULT_WRITE_BUFFER", "ControlWriter", "Writer", "send_message"]

#: Payload bytes a Writer buffers before it sends a fragment.
DEFAULT_WRITE_BUFFER = 4096

# send_message: payloads up to this size are copied behind their header and sent in one
# write (a copy costs less than a second system call or a scatter list); a client masks
# a larger payload this much at a time into one reused buffer, never a copy of it all.
_ONE_WRITE_MAX = 1 << 16
_MASK_CHUNK = 1 << 18

_CONTINUATION = int(OpCode.CONTINUATION)
_FRAGMENTED = STATE_FRAGMENTED


class Writer:
    """Buffers what is written and sends it as frames of opcode ``op`` on ``dest``.

    The buffer keeps room for the largest header in front of the payload, so each
    frame leaves in one write. When the buffer fills, its content goes out as a
    non-final fragment (unless ``fragmenting`` is off: then the buffer grows);
    :meth:`flush` sends the final frame. On the client side each frame is masked
    with a fresh key, in the buffer. Extensions set RSV bits through ``set_bits``.

    Threads: a Writer is used by one thread at a time. Each frame it sends is one
    write, so on a :class:`wsio.LockedSink` its frames go out whole while other
    threads write too; to keep the fragments of one message together against other
    threads' messages, hold ``dest.lock`` from the first write to :meth:`flush`.
    (Control frames from other threads may come between fragments: RFC 6455 §5.4.)
    """

    def __init__(
        self,
        dest: Sink,
        state: State | int,
        op: OpCode | int,
        *,
        buffer_size: int = DEFAULT_WRITE_BUFFER,
        fragmenting: bool = True,
    ) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be positive")
        self._buffer = bytearray(MAX_HEADER_SIZE + buffer_size)
        self._view = memoryview(self._buffer)
        self._extensions: list[SendExtension] = []
        self._scratch = bytearray()  # client side: masked copies of written-through data
        # Which frame of the message goes next (RFC 6455 §5.4): the rule the protocol
        # core applies to received frames, applied to the sent ones.
        self._message = MessageState()
        self._flags = 0
        self.reset(dest, state, op)
        self._dirty = False  # a new Writer's flush() sends nothing until written to
        self.fragmenting = fragmenting

    # Configuration.

    def reset(self, dest: Sink, state: State | int, op: OpCode | int) -> None:
        """Start a new message of opcode ``op`` on ``dest``; extensions are cleared."""
        self.dest = dest
        self._client = bool(int(state) & STATE_CLIENT_SIDE)
        self._state = int(state)
        self._extensions = []
        self.fragmenting = True
        self.reset_op(op)

    def reset_op(self, op: OpCode | int) -> None:
        """Start a new message of opcode ``op``; destination and extensions are kept."""
        self.op = int(op)
        self._n = 0  # payload bytes buffered
        self._flags = 0  # STATE_FRAGMENTED once a non-final frame of it was sent
        # A message begun by a reset is sent by flush() even if nothing is written:
        # copyfileobj(reader, writer) never calls write() for an empty message.
        self._dirty = True

    @property
    def state(self) -> State:
        """Which side this writer is and what was negotiated."""
        return State(self._state)

    def set_extensions(self, *extensions: SendExtension) -> None:
        """Extensions whose ``set_bits`` is applied to every frame header sent."""
        self._extensions = list(extensions)

    def disable_flush(self) -> None:
        """Never send a fragment: grow the buffer instead (for peers that can't reassemble)."""
        self.fragmenting = False

    @property
    def size(self) -> int:
        """The payload capacity of the buffer."""
        return len(self._buffer) - MAX_HEADER_SIZE

    @property
    def buffered(self) -> int:
        """Payload bytes in the buffer, not yet sent."""
        return self._n

    @property
    def available(self) -> int:
        """Payload bytes the buffer can take before it is sent or grows."""
        return self.size - self._n

    def grow(self, n: int) -> None:
        """Make room for at least ``n`` more payload bytes (the buffer at least doubles)."""
        if n <= self.available:
            return
        capacity = max(2 * self.size, self._n + n)
        buffer = bytearray(MAX_HEADER_SIZE + capacity)
        buffer[: MAX_HEADER_SIZE + self._n] = self._view[: MAX_HEADER_SIZE + self._n]
        self._buffer = buffer
        self._view = memoryview(buffer)

    # Writing.

    def writable(self) -> bool:
        """Always True: a Writer is a writable binary stream."""
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Add ``data`` to the message; full buffers go out as fragments. Returns len(data)."""
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        total = len(view)
        self._dirty = True
        while len(view) > self.available:
            if not self.fragmenting:
                self.grow(len(view))
                break
            if self._n == 0:
                # Nothing buffered: send the data itself as a fragment, without copying
                # it into the buffer (servers) or into the buffer masked (clients).
                self.write_through(view)
                return total
            take = self.available
            start = MAX_HEADER_SIZE + self._n
            self._view[start : start + take] = view[:take]
            self._n += take
            view = view[take:]
            self.flush_fragment()
        start = MAX_HEADER_SIZE + self._n
        self._view[start : start + len(view)] = view
        self._n += len(view)
        return total

    def write_through(self, data: bytes | bytearray | memoryview) -> int:
        """Send the buffer, then ``data`` as a non-final fragment of its own."""
        if self._n:
            self.flush_fragment()
        self._dirty = True
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self._send_frame(fin=False, payload=view)
        return len(view)

    def flush_fragment(self) -> None:
        """Send what is buffered as a non-final fragment (nothing if the buffer is empty)."""
        if self._n:
            self._send_buffer(fin=False)

    def flush(self) -> None:
        """Send what is buffered as the final frame of the message, then start a new one.

        Does nothing on a new Writer or after a flush until something is written; after
        a reset it sends the message even if empty (an empty final frame).
        """
        if not self._dirty and not self._flags & _FRAGMENTED:
            return
        self._send_buffer(fin=True)
        self._dirty = False

    # Private.

    def _header(self, fin: bool, length: int) -> Header:
        # The frame is counted into the message as its header is made.
        opcode = _CONTINUATION if self._flags & _FRAGMENTED else self.op
        self._flags = self._message.take(opcode, fin, length, self._flags, False)
        client = self._client
        header = Header(fin, 0, opcode, client, new_mask() if client else None, length)
        for extension in self._extensions:
            header = extension.set_bits(header)
        return header

    def _send_buffer(self, fin: bool) -> None:
        n = self._n
        header = self._header(fin, n)
        start = MAX_HEADER_SIZE - header_size(header)
        encode_header_into(self._view, start, header)
        payload = self._view[MAX_HEADER_SIZE : MAX_HEADER_SIZE + n]
        if header.masked:
            cipher(payload, header.mask)  # type: ignore[arg-type]
        self._n = 0
        write_all(self.dest, self._view[start : MAX_HEADER_SIZE + n])

    def _send_frame(self, fin: bool, payload: memoryview) -> None:
        header = self._header(fin, len(payload))
        if header.masked:
            # RFC 6455 §5.3: the client masks into a reused buffer; the caller's data
            # stays as it was.
            total = header_size(header) + len(payload)
            if len(self._scratch) < total:
                self._scratch = bytearray(total)
            masked = memoryview(self._scratch)[:total]
            size = encode_header_into(masked, 0, header)
            mask_into(masked[size:], payload, header.mask)  # type: ignore[arg-type]
            write_all(self.dest, masked)
        else:
            write_frame(self.dest, Frame(header, payload))


def send_message(
    dest: Sink, state: State | int, op: OpCode | int, payload: bytes | bytearray | memoryview
) -> None:
    """Send ``payload`` as one final frame of opcode ``op``; nothing of it is kept.

    RFC 6455 §5.3: a client masks a copy with a fresh key, never ``payload``. One
    ``sendall`` for up to 64 KiB; on a :class:`wsio.LockedSink` the frame goes out whole.
    """
    client: cython.bint = bool(int(state) & STATE_CLIENT_SIDE)
    if cython.compiled:
        view = cython.declare(buffer_t)  # type: ignore[unreachable]
        key = cython.declare(key_t)
        PyObject_GetBuffer(payload, cython.address(view), PyBUF_SIMPLE)
        try:
            n: cython.Py_ssize_t = view.len
            if n <= _ONE_WRITE_MAX:
                # RFC 6455 §5.2: the header, then the payload, in one buffer.
                hsize: cython.Py_ssize_t = 2 if n <= 125 else (4 if n <= 65535 else 10)
                if client:
                    hsize += 4
                    take_mask(key)
                frame = PyBytes_FromStringAndSize(cython.NULL, hsize + n)
                p = cython.cast(uchar_ptr, PyBytes_AS_STRING(frame))
                put_header(p, True, int(op), 0, n, client, cython.cast(cbytes_ptr, key))
                src = cython.cast(uchar_ptr, view.buf)
                if client:
                    wsio_mask_xor(p + hsize, src, n, key, 0)
                elif n:
                    memcpy(p + hsize, src, n)
                # write_all's own first step, without its Python frame: a socket's (or a
                # LockedSink's) sendall.
                sendall = getattr(dest, "sendall", None)
                if sendall is not None:
                    sendall(frame)
                else:
                    write_all(dest, frame)
                return
        finally:
            PyBuffer_Release(cython.address(view))
    elif len(memoryview(payload).cast("B")) <= _ONE_WRITE_MAX:
        data = memoryview(payload).cast("B")
        mask = new_mask() if client else None
        header = Header(True, 0, int(op), client, mask, len(data))
        wire = bytearray(header_size(header) + len(data))
        start = encode_header_into(wire, 0, header)
        if mask is not None:
            mask_into(memoryview(wire)[start:], data, mask)
        else:
            wire[start:] = data
        write_all(dest, wire)
        return
    _send_large(dest, client, int(op), memoryview(payload).cast("B"))


def _send_large(dest: Sink, client: cython.bint, op: cython.int, data: memoryview) -> None:
    # A payload over _ONE_WRITE_MAX: a server sends it as it is, behind its header (one
    # sendmsg on a socket); a client masks it chunk by chunk into one buffer, sending
    # each, under the LockedSink's lock so that the frame stays whole.
    n = len(data)
    if not client:
        write_frame(dest, Frame(Header(True, 0, op, False, None, n), data))
        return
    mask = new_mask()
    header = Header(True, 0, op, True, mask, n)
    scratch = bytearray(MAX_HEADER_SIZE + min(n, _MASK_CHUNK))
    buffer = memoryview(scratch)
    start = encode_header_into(scratch, 0, header)
    sink = dest.sink if type(dest) is LockedSink else dest
    lock = dest.lock if type(dest) is LockedSink else None
    if lock is not None:
        lock.acquire()
    try:
        done = 0
        while done < n:
            take = min(n - done, len(scratch) - start)
            mask_into(buffer[start : start + take], data[done : done + take], mask, done)
            write_all(sink, buffer[: start + take])
            done += take
            start = 0
    finally:
        if lock is not None:
            lock.release()


class ControlWriter:
    """Buffers a control frame's payload (at most 125 bytes in all) and sends it on flush.

    One thread at a time; its frame is one write, whole on a :class:`wsio.LockedSink`.
    """

    def __init__(self, dest: Sink, state: State | int, op: OpCode | int) -> None:
        if not int(op) & 0x8:
            raise LocalProtocolError(f"opcode {int(op):#x} is not a control opcode")
        self._writer = Writer(dest, state, op, buffer_size=MAX_CONTROL_PAYLOAD, fragmenting=False)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Add ``data`` to the payload; :class:`LocalProtocolError` past 125 bytes in all."""
        if len(data) > self._writer.available:
            raise LocalProtocolError("control frame payload over 125 bytes")
        return self._writer.write(data)

    def flush(self) -> None:
        """Send the control frame (empty if nothing was written)."""
        self._writer.write(b"")  # an empty payload is a frame too
        self._writer.flush()
