"""The data plane's HTTP/1.1 exchange: the request's bytes, the answer's framing (parsed by httptools,
the bindings to llhttp, Node.js's HTTP parser), and whether the connection may carry the next request.
Sans-I/O: the sync and the asyncio driver feed it what they receive and write what it returns, so both
frame every answer the same way.

What the parser decides, and the hand-written framing it replaced got wrong: an interim 1xx answer is
skipped, not taken for the answer (the real answer would then have been read by the next request); a
body is read exactly as its Content-Length or chunked framing says, and an answer cut short is an
error, never a short body. A connection is reused only when both sides of the last exchange are
complete (the whole request written, the whole final answer read, llhttp's keep-alive verdict for it)
and nothing arrived after the answer: stray bytes would be read as the next request's answer.

Why llhttp and not h11 (pure Python, which this module first used): h11 validates and normalises every
header of the request and of the answer through regular expressions and runs its state machine per
event: ~370 µs of client CPU per acquire more than llhttp, measured A/B on the embedded server, which
took the hot path over a quarter of the published package's CPU. llhttp costs what the hand-written
framing did, and ~11 µs per exchange warm (docs/benchmarks.md, "The HTTP framing")."""

from __future__ import annotations

from typing import NamedTuple

import httptools

# Longest response head accepted (status line and headers); DynamoDB's are a few hundred bytes.
MAX_HEAD = 64 * 1024
RECEIVE_SIZE = 65536


class ProtocolError(Exception):
    """Bytes that are not an HTTP/1.1 answer, or a stream that ended inside one."""


class Answer(NamedTuple):
    status: int
    body: bytes
    content_length: str | None
    crc32: str | None


class Exchange:
    """One connection's HTTP/1.1 state, one request at a time."""

    __slots__ = ("_parser", "_status", "_length", "_crc32", "_chunked", "_body", "_in_head", "_answer", "_keep",
                 "_stray", "_ended", "received")

    def __init__(self) -> None:
        self._answer: Answer | None = Answer(0, b"", None, None)  # "the last exchange is complete"
        self._keep = True
        self._stray = self._ended = False
        self._parser: httptools.HttpResponseParser | None = None
        self.received = 0

    def request(self, headers: list[tuple[str, str]], body: bytes) -> bytes:
        """The bytes of `POST /` with these headers (Host and Content-Length among them) and body.
        ProtocolError unless the last exchange on this connection is complete and it may be reused."""
        if not self.reusable:
            raise ProtocolError("the connection's last exchange is not complete: it cannot carry another request")
        head = "".join([f"{name}: {value}\r\n" for name, value in headers])
        if head.count("\n") != len(headers) or head.count("\r") != len(headers):  # one check, not one per header
            broken = next(name for name, value in headers if "\n" in value or "\r" in value)
            raise ValueError(f"header {broken} has a line break")
        self._parser = httptools.HttpResponseParser(self)
        self._answer, self._keep, self._stray, self.received = None, False, False, 0
        self._begin()
        return f"POST / HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body

    def receive(self, data: bytes) -> Answer | None:
        """Feed what arrived (b"" when the stream ended): the final answer once it is whole, else None.
        ProtocolError when the bytes are not an HTTP/1.1 answer or the stream ended inside one."""
        if not data:
            return self._end_of_stream()
        self.received += len(data)
        if self._parser is None:
            raise ProtocolError("an answer nobody asked for")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            raise ProtocolError(str(error) or type(error).__name__) from None
        if self._in_head and self.received > MAX_HEAD:
            raise ProtocolError(f"an answer head longer than {MAX_HEAD} bytes")
        return self._answer

    def _end_of_stream(self) -> Answer | None:
        self._ended = True
        if self._answer is not None:
            return self._answer
        if not self._in_head and self._length is None and not self._chunked:
            # Neither length nor chunks: the body runs to the end of the stream (RFC 9112, 6.3).
            self._answer = Answer(self._status, b"".join(self._body), None, self._crc32)
            return self._answer
        raise ProtocolError("the server closed the connection inside the answer" if self.received
                            else "the server closed the connection without answering")

    @property
    def reusable(self) -> bool:
        """Both sides of the last exchange are complete, the server did not ask to close (nor closed),
        and nothing arrived after the answer."""
        return self._answer is not None and self._keep and not self._stray and not self._ended

    # -- the parser's callbacks ----------------------------------------------------------------------
    def _begin(self) -> None:
        self._status, self._length, self._crc32, self._chunked, self._body, self._in_head = 0, None, None, False, [], True

    def on_message_begin(self) -> None:
        if self._answer is not None:  # a second answer after the final one
            self._stray = True
        self._begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a chunked answer's trailers
        name = name.lower()
        if name == b"content-length":
            self._length = value.decode("latin-1")
        elif name == b"x-amz-crc32":
            self._crc32 = value.decode("latin-1")
        elif name == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._status = self._parser.get_status_code()  # type: ignore[union-attr]
        if self._status == 101:
            raise ProtocolError("101 Switching Protocols, which was never asked for")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._answer is not None or self._stray:
            self._stray = True
        elif not 100 <= self._status < 200:  # 1xx answers are interim: the final answer follows
            self._answer = Answer(self._status, b"".join(self._body), self._length, self._crc32)
            self._keep = self._parser.should_keep_alive()  # type: ignore[union-attr]
