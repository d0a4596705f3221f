"""The data plane's HTTP/1.1 framing (zae_limiter/transport/http11.py, on httptools: llhttp), fed bytes as a server would send
them. Expected values come from RFC 9112: a 1xx answer is interim and the final answer follows
(section 15.2 of RFC 9110), a body is exactly Content-Length bytes or chunked, a message cut short is
incomplete (section 8), and a connection carries the next request only when the last exchange is
complete on both sides and the server did not ask to close it (section 9.3, 9.6)."""

from __future__ import annotations

import pytest

from zae_limiter.transport.http11 import Answer, Exchange, ProtocolError

HEADERS = [("Host", "127.0.0.1:8000"), ("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", "2")]


def exchange() -> Exchange:
    e = Exchange()
    e.request(HEADERS, b"{}")
    return e


def feed(e: Exchange, *pieces: bytes) -> Answer | None:
    answer = None
    for piece in pieces:
        answer = e.receive(piece)
    return answer


def test_the_request_is_one_post_with_the_given_headers():
    wire = Exchange().request(HEADERS, b"{}")
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"POST / HTTP/1.1"
    assert b"Content-Length: 2" in head.split(b"\r\n") and body == b"{}"


def test_a_whole_answer_in_any_pieces():
    e = exchange()
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nx-amz-crc32: 123\r\n\r\n{\"a\":1}"
    pieces = [wire[i : i + 3] for i in range(0, len(wire), 3)]
    answers = [e.receive(p) for p in pieces]
    assert answers[:-1] == [None] * (len(pieces) - 1)
    assert answers[-1] == Answer(200, b'{"a":1}', "7", "123")
    assert e.reusable


def test_an_interim_answer_is_skipped_and_the_final_one_returned():
    e = exchange()
    answer = feed(e, b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 400 Bad\r\nContent-Length: 2\r\n\r\n{}")
    assert answer is not None and answer.status == 400 and answer.body == b"{}"
    assert e.reusable


def test_a_chunked_answer_is_joined():
    e = exchange()
    answer = feed(e, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert answer == Answer(200, b'{"a":1}', None, None)
    assert e.reusable


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # cut mid-body
        b"HTTP/1.1 200 OK\r\nContent-Le",  # cut mid-head
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",  # cut mid-chunk
        b"",  # not a byte came back
    ],
)
def test_an_answer_cut_short_is_an_error_never_a_short_body(wire):
    e = exchange()
    if wire:
        assert e.receive(wire) is None
    with pytest.raises(ProtocolError):
        e.receive(b"")  # the stream ended


@pytest.mark.parametrize("wire", [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
def test_bytes_that_are_not_an_http_answer_are_refused(wire):
    with pytest.raises(ProtocolError):
        exchange().receive(wire)


def test_a_body_delimited_by_the_end_of_the_stream_ends_there_and_the_connection_is_not_reused():
    e = exchange()
    assert e.receive(b"HTTP/1.1 200 OK\r\n\r\n{\"a\":") is None
    assert e.receive(b"1}") is None
    assert e.receive(b"") == Answer(200, b'{"a":1}', None, None)
    assert not e.reusable


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",  # 1.0 closes unless it says keep-alive
    ],
)
def test_a_server_that_closes_after_the_answer_leaves_the_connection_unusable(wire):
    e = exchange()
    assert e.receive(wire) is not None
    assert not e.reusable


def test_bytes_after_the_answer_make_the_connection_unusable():
    """Stray bytes would be read as the next request's answer."""
    e = exchange()
    second = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    assert e.receive(b"HTTP/1.1 400 Bad\r\nContent-Length: 2\r\n\r\n{}" + second).status == 400
    assert not e.reusable


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_answers_have_no_body_whatever_they_say(status):
    e = exchange()
    assert e.receive(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode()) == Answer(status, b"", "0", None)
    assert e.reusable


def test_the_next_request_starts_only_after_the_last_exchange_completed():
    e = exchange()
    e.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    again = e.request(HEADERS, b"{}")  # a new cycle on the same connection
    assert again.startswith(b"POST / HTTP/1.1")
    unfinished = exchange()
    unfinished.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{")
    with pytest.raises(ProtocolError):
        unfinished.request(HEADERS, b"{}")
