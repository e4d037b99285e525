"""uvicorn's httptools HTTP/1.1 protocol with a deadline and a size limit on request heads.

uvicorn times out only idle keep-alive connections (`timeout_keep_alive`, armed after a response):
a connection that sends nothing, or half a request line and a header now and then, stays open
for as long as the client likes (four such connections were still open after 90 s), and httptools
keeps every header it is sent. Here a connection must complete each request head within
`header_timeout_s` of its first byte (of connecting, for the first request) and within
about `max_head_bytes`, or it is closed (too large: answered 431 first). Bodies are the app's business
(stall_timeout_s, timeout_s), since only the app knows what it is waiting for.
"""

from __future__ import annotations

import asyncio
import json
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("resnetlab.serve")
MAX_HEAD_BYTES = 64 * 1024  # request line + headers; h11's default is 16 KiB, nginx's 8 KiB per line x 4 lines


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and uvicorn answers with send_400_response."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0  # set per server by `guarded_protocol`
    max_head_bytes = MAX_HEAD_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None  # set while a request head is awaited or arriving
        self._head_bytes = self._parsed_head_bytes = 0  # bytes received / parsed of the current request head
        self._head_too_large = False
        super().connection_made(transport)
        self._start_head_clock()  # a connection that never sends a byte is on the clock too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A head that ends within this read is measured exactly by the parser callbacks below; one still
        # unfinished after it is measured here, since httptools buffers a header until its end (an endless
        # header would never reach on_header). The count may miss the read a request began in.
        if self._head_timer is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_timer is not None and self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            self._refuse_large_head()

    def _start_head_clock(self) -> None:
        self._stop_head_clock()
        self._head_bytes = self._parsed_head_bytes = 0
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.info("closed a connection whose request head took over %g s (header_timeout_s)",
                     self.header_timeout_s)
            self.transport.close()

    def _refuse_large_head(self) -> None:
        self._stop_head_clock()
        if self.transport.is_closing():
            return
        body = json.dumps({"error": f"the request line and headers exceed {self.max_head_bytes:,} bytes; "
                                    f"send fewer or shorter headers"}).encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.close()

    # parser callbacks: a request begins at its first byte, its head ends at on_headers_complete
    def on_message_begin(self) -> None:
        if self._head_timer is None:  # the next request on a kept-alive connection; the first's runs from connecting
            self._start_head_clock()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count_parsed(self, size: int) -> None:
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > self.max_head_bytes:
            self._head_too_large = True
            raise HeadTooLarge  # before the request reaches the app

    def send_400_response(self, msg: str) -> None:  # uvicorn's answer to a parser error, ours among them
        if self._head_too_large:
            self._refuse_large_head()
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        super().on_headers_complete()


def guarded_protocol(header_timeout_s: float, max_head_bytes: int = MAX_HEAD_BYTES) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), with these limits (uvicorn builds one per connection)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout_s": header_timeout_s, "max_head_bytes": max_head_bytes})
