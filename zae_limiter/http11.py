"""The data plane's HTTP/1.1 exchange on h11: the request's bytes, the answer's framing, and whether the
connection may carry the next request. Sans-I/O: the sync and the asyncio driver feed it what they
receive and write what it returns, so both frame every answer the same way.

What h11 decides for us, and the hand-written framing it replaced got wrong: an interim 1xx answer is
skipped, not taken for the answer (the real answer would then have been read by the next request);
a body is read exactly as its Content-Length or chunked framing says, and an answer cut short is an
error, never a short body; a connection is reused only when both sides of the last exchange are
complete (h11's `our_state` and `their_state` DONE) and nothing arrived after the answer (stray
bytes would be read as the next request's answer)."""

from __future__ import annotations

from typing import NamedTuple

import h11

# Longest response head accepted (status line and headers); DynamoDB's are a few hundred bytes.
MAX_HEAD = 64 * 1024
RECEIVE_SIZE = 65536

ProtocolError = h11.ProtocolError


class Answer(NamedTuple):
    status: int
    body: bytes
    content_length: str | None
    crc32: str | None


class Exchange:
    """One connection's HTTP/1.1 state, one request at a time."""

    __slots__ = ("_h11", "_status", "_length", "_crc32", "_body", "_ended", "received")

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._status = 0
        self._length: str | None = None
        self._crc32: str | None = None
        self._body: list[bytes] = []
        self._ended = False  # the stream has ended: nothing more can be sent or received on it
        #: Bytes of the current answer received so far (0: not a byte came back).
        self.received = 0

    def request(self, headers: list[tuple[str, str]], body: bytes) -> bytes:
        """The bytes of `POST /` with these headers (Host and Content-Length among them) and body."""
        connection = self._h11
        if connection.our_state is h11.DONE:
            connection.start_next_cycle()  # h11 refuses unless both sides of the last exchange are DONE
        self._status, self._length, self._crc32, self._body, self.received = 0, None, None, [], 0
        return (
            connection.send(h11.Request(method="POST", target="/", headers=headers))
            + connection.send(h11.Data(data=body))
            + connection.send(h11.EndOfMessage())
        )

    def receive(self, data: bytes) -> Answer | None:
        """Feed what arrived (b"" when the stream ended): the final answer once it is whole, else None.
        ProtocolError when the bytes are not an HTTP/1.1 answer or the stream ended inside one."""
        connection = self._h11
        self.received += len(data)
        self._ended = self._ended or not data
        connection.receive_data(data)
        while True:
            event = connection.next_event()
            kind = type(event)
            if kind is h11.Data:
                self._body.append(event.data)
            elif kind is h11.Response:
                self._status = event.status_code
                for name, value in event.headers:
                    if name == b"content-length":
                        self._length = value.decode("latin-1")
                    elif name == b"x-amz-crc32":
                        self._crc32 = value.decode("latin-1")
            elif kind is h11.EndOfMessage:
                return Answer(self._status, b"".join(self._body), self._length, self._crc32)
            elif event is h11.NEED_DATA:
                return None
            elif kind is h11.InformationalResponse:
                continue  # 100 Continue and the like: the answer follows
            else:  # ConnectionClosed or PAUSED before the answer ended
                raise h11.RemoteProtocolError(f"the answer ended early ({kind.__name__})")

    @property
    def reusable(self) -> bool:
        """Both sides of the last exchange are complete, the server did not ask to close (nor closed),
        and nothing arrived after the answer."""
        connection = self._h11
        return not self._ended and connection.our_state is h11.DONE and connection.their_state is h11.DONE and not connection.trailing_data[0]
