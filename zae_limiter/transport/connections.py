"""The data plane's kept-alive connections: one socket per thread for the sync driver, pools of asyncio
connections per event loop for the async one, and the exchange of one request on each (framed by
http11.Exchange, so both drivers read answers the same way).

What a lost answer means depends on whether the request can have arrived, and this module is where that
is known: a failed connect, a kept-alive connection found closed (or holding stray bytes) before
sending, and a first send that fails outright raise `NotSent` (nothing left: safe to send on a new
connection); anything after the first byte went out raises `Ambiguous` (it may have been applied).

A server closes an idle kept-alive connection when it chooses to, and a request that crosses its FIN
cannot be told from one the server received and never answered. So a connection idle for more than
MAX_IDLE_SECONDS is retired before it is used again, below every keep-alive we could find:
DynamoDB closes them after about 60 s (the AWS SDK for Java's connectionMaxIdleMillis; aws/aws-sdk-java#1365,
feast-dev/feast#5167 measured ~90 s); moto's own server sends `Connection: close` on every answer and
zae_limiter.local_server keeps them until the client closes; uvicorn, hypercorn and Apache default to 5 s,
nginx to 75 s."""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import threading
import weakref
from dataclasses import dataclass
from time import monotonic  # a module-level name, so tests can move it
from typing import Any

from .deferral import answer_future, held_answer
from .http11 import RECEIVE_SIZE, Answer, Exchange, ProtocolError
from ..state import deadlines as coalesced

MAX_IDLE_SECONDS = 4.0
# One TLS record: a request no longer than this leaves in one SSL write, so a failed first write sent none of it.
TLS_RECORD = 16384


class NotSent(Exception):
    """Not a byte of the request left: it cannot have been applied."""


class Ambiguous(Exception):
    """The request may have reached DynamoDB, and no whole answer came back."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect."""

    hostname: str
    port: int
    ssl_context: ssl.SSLContext | None
    connect_timeout: float
    read_timeout: float
    tcp_keepalive: bool = False

    def tune(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tcp_keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def _quiet(sock: Any) -> bool:
    """Nothing to read on an idle connection: a closed one reads as EOF at once, and stray bytes would
    be taken for the next answer."""
    if getattr(sock, "pending", None) is not None and sock.pending():  # TLS bytes already decrypted
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _first_send_failed(error: OSError, payload: bytes, tls: bool) -> NotSent | None:
    if tls and len(payload) > TLS_RECORD:
        return None  # records before the failing one may have left
    return NotSent(f"the connection was closed before the request left ({error or type(error).__name__})")


# -- sync ---------------------------------------------------------------------------------------------
class SyncConnection:
    """A kept-alive socket of one thread."""

    __slots__ = ("sock", "tls", "exchange", "idle_until", "__weakref__")

    def __init__(self, sock: socket.socket, tls: bool) -> None:
        self.sock, self.tls = sock, tls
        self.exchange = Exchange()
        self.idle_until = 0.0

    @classmethod
    def open(cls, endpoint: Endpoint) -> "SyncConnection":
        """NotSent when no connection can be made (the TLS handshake is in the connect timeout)."""
        try:
            sock = socket.create_connection((endpoint.hostname, endpoint.port), timeout=endpoint.connect_timeout)
        except OSError as error:
            raise NotSent(f"cannot connect to {endpoint.hostname}:{endpoint.port}: {error}") from error
        try:
            endpoint.tune(sock)
            if endpoint.ssl_context is not None:
                sock = endpoint.ssl_context.wrap_socket(sock, server_hostname=endpoint.hostname)
            sock.settimeout(endpoint.read_timeout)
        except OSError as error:
            sock.close()
            raise NotSent(f"cannot connect to {endpoint.hostname}:{endpoint.port}: {error}") from error
        except BaseException:
            sock.close()
            raise
        return cls(sock, endpoint.ssl_context is not None)

    def usable(self, now: float) -> bool:
        return now < self.idle_until and _quiet(self.sock)

    def exchange_once(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        """One request and its whole answer. NotSent or Ambiguous otherwise; the connection is then spent."""
        exchange, sock = self.exchange, self.sock
        payload = exchange.request(headers, body)
        try:
            sent = sock.send(payload)
        except OSError as error:
            raise (_first_send_failed(error, payload, self.tls) or Ambiguous(str(error))) from error
        try:
            if sent < len(payload):
                sock.sendall(memoryview(payload)[sent:])
            while (answer := exchange.receive(sock.recv(RECEIVE_SIZE))) is None:
                pass
        except (OSError, ProtocolError) as error:  # a timeout, a reset, an answer cut short or garbled
            raise Ambiguous(_describe(error, exchange.received)) from error
        return answer

    def close(self) -> None:
        self.sock.close()


class SyncConnections:
    """One connection per thread; `close()` closes every one of them."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._local = threading.local()
        # Weak: a thread's connection goes (and its socket closes) when the thread ends.
        self._all: weakref.WeakSet[SyncConnection] = weakref.WeakSet()
        self._lock = threading.Lock()

    def exchange(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        connection: SyncConnection | None = getattr(self._local, "connection", None)
        if connection is not None and not connection.usable(monotonic()):
            self._drop(connection)
            connection = None
        if connection is None:
            connection = self._local.connection = SyncConnection.open(self.endpoint)
            with self._lock:
                self._all.add(connection)
        try:
            answer = connection.exchange_once(headers, body)
        except BaseException:
            self._drop(connection)
            raise
        if connection.exchange.reusable:
            connection.idle_until = monotonic() + MAX_IDLE_SECONDS
        else:
            self._drop(connection)
        return answer

    def _drop(self, connection: SyncConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None

    def __len__(self) -> int:
        return len(self._all)

    def close(self) -> None:
        with self._lock:
            connections, self._all = list(self._all), weakref.WeakSet()
        self._local = threading.local()
        for connection in connections:
            connection.close()


# -- asyncio -------------------------------------------------------------------------------------------
class AsyncConnection(asyncio.Protocol):
    """One asyncio connection: what arrives goes to its Exchange, and the answer (or the failure)
    completes the waiting request's future. The socket is ours, so it can be closed even after its event
    loop has closed (a closed loop can no longer close its transports)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: bool, generation: int) -> None:
        self.loop, self.sock, self.tls, self.generation = loop, sock, tls, generation
        self.deadlines, self.exchange = coalesced.of(loop), Exchange()  # read timeouts: the loop's shared timers
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Answer] | None = None
        self.lost = False
        self.idle_until = 0.0

    @classmethod
    async def open(cls, endpoint: Endpoint, generation: int) -> "AsyncConnection":
        """NotSent when no connection can be made within the connect timeout."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(endpoint.connect_timeout):
                return await cls._connect(loop, endpoint, generation)
        except (OSError, TimeoutError) as error:
            raise NotSent(f"cannot connect to {endpoint.hostname}:{endpoint.port}: {error or 'timed out'}") from error

    @classmethod
    async def _connect(cls, loop: asyncio.AbstractEventLoop, endpoint: Endpoint, generation: int) -> "AsyncConnection":
        addresses = await loop.getaddrinfo(endpoint.hostname, endpoint.port, type=socket.SOCK_STREAM)
        last: OSError = OSError(f"no address for {endpoint.hostname}")
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                endpoint.tune(sock)
                await loop.sock_connect(sock, address)
                _, connection = await loop.create_connection(
                    lambda: cls(loop, sock, endpoint.ssl_context is not None, generation), sock=sock, ssl=endpoint.ssl_context,
                    server_hostname=endpoint.hostname if endpoint.ssl_context is not None else None,
                )
                return connection
            except OSError as error:
                sock.close()
                last = error
            except BaseException:
                sock.close()
                raise
        raise last

    # the protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self.lost = True
        self._feed(b"")  # a body delimited by the end of the stream ends here
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc or ConnectionResetError("the server closed the connection"))

    def _feed(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            if data:  # bytes nobody asked for: they would be read as the next answer
                self.lost = True
                if self.transport is not None:
                    self.transport.close()
            return
        try:
            answer = self.exchange.receive(data)
        except ProtocolError as error:
            waiter.set_exception(error)
            return
        if answer is not None:
            waiter.set_result(answer)

    # the exchange
    def usable(self, now: float) -> bool:
        transport = self.transport
        return (not self.lost and transport is not None and not transport.is_closing()
                and now < self.idle_until and _quiet(self.sock))

    async def exchange_once(self, headers: list[tuple[str, str]], body: bytes, read_timeout: float) -> Answer:
        """One request and its whole answer. NotSent or Ambiguous otherwise; the connection is then spent.
        A cancelled request spends it too: its answer may still come."""
        payload = self.exchange.request(headers, body)
        transport = self.transport
        assert transport is not None
        waiter = self.waiter = answer_future(self.loop)
        try:
            transport.write(payload)
            if transport.is_closing() and not self.tls:
                # A plain-TCP transport tries the send at once and closes on its error: nothing left.
                # (A TLS transport's own state does not show that: its failures count as ambiguous.)
                raise NotSent("the connection was closed before the request left")
            when = self.deadlines.add(read_timeout, waiter, _expire)
            try:
                return await waiter
            except asyncio.CancelledError:
                if not held_answer(waiter):
                    raise
                return waiter.result()  # a deferral's (deferral.py): the exchange ends as it would have
            finally:
                self.deadlines.remove(when, waiter)
        except (OSError, ProtocolError, TimeoutError) as error:
            raise Ambiguous(_describe(error, self.exchange.received)) from error
        finally:
            self.waiter = None

    def close(self) -> None:
        """From any thread: the connection's own loop closes its transport; a loop that is closed (or
        not running) cannot, so then the socket is closed here."""
        loop, transport = self.loop, self.transport
        if transport is None or loop.is_closed():
            self.sock.close()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            transport.close()
        elif loop.is_running():
            try:
                loop.call_soon_threadsafe(transport.close)
            except RuntimeError:  # it closed meanwhile
                self.sock.close()
        else:
            transport.close()  # unregisters the socket from the selector; the loop may never run again
            self.sock.close()


class AsyncPools:
    """Idle asyncio connections, one pool per event loop: asyncio connections belong to their loop.
    Several loops in several threads may share one data plane: every pool is touched under one lock,
    and `close()` hands each connection to its own loop to close (see AsyncConnection.close). A
    connection in flight during close() is closed when it comes back, never pooled."""

    def __init__(self, endpoint: Endpoint, max_idle: int) -> None:
        self.endpoint = endpoint
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._pools: dict[asyncio.AbstractEventLoop, list[AsyncConnection]] = {}
        self.generation = 0

    async def exchange(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        connection = self._take(asyncio.get_running_loop()) or await AsyncConnection.open(self.endpoint, self.generation)
        reusable = False
        try:
            answer = await connection.exchange_once(headers, body, self.endpoint.read_timeout)
            # An answer can come before the whole request left (a server that refuses early).
            written = connection.transport is not None and connection.transport.get_write_buffer_size() == 0
            reusable = written and connection.exchange.reusable
            return answer
        finally:  # also on cancellation: a half-used connection is never reused
            if reusable:
                self._give_back(connection)
            else:
                connection.close()

    def _take(self, loop: asyncio.AbstractEventLoop) -> AsyncConnection | None:
        now = monotonic()
        stale: list[AsyncConnection] = []
        found = None
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None:
                # A new loop: the pools of loops that have closed can never be used again.
                for old in [other for other in self._pools if other.is_closed()]:
                    stale.extend(self._pools.pop(old))
                self._pools[loop] = []
            else:
                while pool:
                    connection = pool.pop()
                    if connection.usable(now):
                        found = connection
                        break
                    stale.append(connection)
        for connection in stale:
            connection.close()
        return found

    def _give_back(self, connection: AsyncConnection) -> None:
        with self._lock:
            pool = self._pools.get(connection.loop)
            if connection.generation == self.generation and pool is not None and len(pool) < self.max_idle:
                connection.idle_until = monotonic() + MAX_IDLE_SECONDS
                pool.append(connection)
                return
        connection.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pools)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            self.generation += 1
        for pool in pools:
            for connection in pool:
                connection.close()


def _expire(waiter: "asyncio.Future[Answer]") -> None:
    waiter.done() or waiter.set_exception(TimeoutError())


def _describe(error: BaseException, received: int) -> str:
    what = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        what = "no answer within the read timeout"
    return what if received else f"{what} (not a byte of the answer came back)"
