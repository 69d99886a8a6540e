"""Serve the web app under gunicorn without letting slow clients hold it or secrets reach its log.

Gunicorn's sync workers read each request whole before serving the next, so a
few clients that send one header line every few seconds hold every worker
(gunicorn's own advice: a buffering proxy in front, or workers that do not
block on a client). Rome runs gunicorn's threaded worker, extended so that it
buffers requests like such a proxy: its poller reads each request, head and
body (Content-Length or chunked), and a thread serves it only once it is whole
in memory. A client must send its whole request within READ_SECONDS (one
deadline for head and body, however it dribbles them) and take each write of
the answer within WRITE_SECONDS, or it is disconnected. A head over HEAD_LIMIT
gets 431 and a body over BODY_LIMIT (declared, with any number of digits, or
sent chunked) 413, at once from the poller: no thread waits for it and nothing
is spooled. A body gunicorn's parser refuses (a chunk size that is not hex) is
a 400, not a 500 with a traceback.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import threading
import time
import unicodedata
from functools import partial
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger
from gunicorn.http.errors import NoMoreData, ParseException
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.exceptions import BadRequest

READ_SECONDS = 10.0
WRITE_SECONDS = 10.0
# What the poller reads of a request before a thread takes over: all of it, or
# the request is refused. Rome's whole requests are under 2 KiB; gunicorn's own
# limits (web/gunicorn_conf.py) still apply to each line and field of the head.
HEAD_LIMIT = 32768
BODY_LIMIT = 65536
REQUEST_BUFFER = HEAD_LIMIT + BODY_LIMIT
# At most one line a minute per worker says how many slow clients it cut.
REPORT_EVERY = 60.0

# A query parameter: the name as sent (perhaps percent-encoded), then its value.
_PARAMETER = re.compile(r"((?:^|[?&;])([^=&;#?\s]*)=)[^&;#\s]*")
# A name that says its value is a secret (?token=, ?api_key=, ...), once decoded.
SECRET_NAME = re.compile(r"token|secret|passw|key|auth|session|csrf|signature")
REDACTED = "[redacted]"


def _says_secret(name: str) -> bool:
    # Decoded as the app decodes it (%XX, and + for a space), and again while
    # that changes it (t%256Fken); then only its letters and digits, so that
    # neither case, nor a separator (pass_word, to+ken), nor a look-alike
    # character hides the word.
    for _ in range(3):
        decoded = unquote_plus(name, errors="replace")
        if decoded == name:
            break
        name = decoded
    letters = "".join(ch for ch in unicodedata.normalize("NFKC", name).casefold() if ch.isalnum())
    return SECRET_NAME.search(letters) is not None


def redact_query(text: str) -> str:
    """Replace the value of every query parameter in text whose name, decoded, says secret."""
    return _PARAMETER.sub(
        lambda m: m[1] + REDACTED if _says_secret(m[2]) else m[0], text
    )


_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*([0-9]+)[ \t]*\r?(?=\n)", re.I)
_TRANSFER_ENCODING = re.compile(rb"\ntransfer-encoding[ \t]*:([^\r\n]*)", re.I)
_EXPECT_CONTINUE = re.compile(rb"\nexpect[ \t]*:[ \t]*100-continue[ \t]*\r?\n", re.I)
_CHUNK_SIZE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\n]*)?\r?\n")

# What the poller does with a request it is reading (_request_state).
WAIT = "wait"                      # read more
WHOLE = "whole"                    # hand it to a thread: nothing left to wait for
CONTINUE = "continue"              # answer 100 Continue, then read the body
HEAD_TOO_LARGE = "head_too_large"  # 431, and close
TOO_LARGE = "too_large"            # 413, and close


def _head_end(buffer: bytearray) -> int:
    """Where the body starts (just after the blank line), or -1 while the head is not in."""
    end = buffer.find(b"\r\n\r\n")
    lf = buffer.find(b"\n\n")
    ends = [at + size for at, size in ((end, 4), (lf, 2)) if at >= 0]
    return min(ends) if ends else -1


def _chunked_state(buffer: bytearray, at: int) -> str:
    """Whether a chunked body from `at` is whole (last chunk and trailers in), too large,
    or still arriving. A framing gunicorn refuses is WHOLE: its parser answers 400."""
    body_start = at
    while True:
        size = _CHUNK_SIZE.match(buffer, at)
        if size is None:
            if buffer.find(b"\n", at) < 0 and len(buffer) - at <= 64:
                break  # the size line is still arriving
            return WHOLE
        length = int(size[1], 16)
        if length > BODY_LIMIT:
            return TOO_LARGE
        at = size.end()
        if length == 0:  # the last chunk: trailer lines, up to an empty one
            while (line := buffer.find(b"\n", at)) >= 0:
                if buffer[at:line].rstrip(b"\r") == b"":
                    return WHOLE
                at = line + 1
            break
        at += length
        ending = buffer[at:at + 2]
        if len(buffer) < at + 2 and ending in (b"", b"\r"):
            break
        if ending == b"\r\n":
            at += 2
        elif ending[:1] == b"\n":
            at += 1
        else:
            return WHOLE
    return TOO_LARGE if len(buffer) - body_start > BODY_LIMIT else WAIT


def _request_state(buffer: bytearray) -> str:
    """Tell what the poller does with buffer, the start of a request: WAIT for more of it,
    hand it over WHOLE, answer CONTINUE, or refuse it (HEAD_TOO_LARGE, TOO_LARGE).

    Only a buffering decision: gunicorn's parser still reads and checks every byte.
    """
    body = _head_end(buffer)
    if body < 0:
        return HEAD_TOO_LARGE if len(buffer) > HEAD_LIMIT else WAIT
    if body > HEAD_LIMIT:
        return HEAD_TOO_LARGE
    codings = [coding.strip().lower() for header in _TRANSFER_ENCODING.finditer(buffer, 0, body)
               for coding in header[1].split(b",")]
    expects = _EXPECT_CONTINUE.search(buffer, 0, body) is not None
    if codings:
        if b"chunked" not in codings:
            return WHOLE  # no length at all: gunicorn answers 400 without reading on
        return CONTINUE if expects else _chunked_state(buffer, body)
    lengths = [match[1].lstrip(b"0") or b"0" for match in _CONTENT_LENGTH.finditer(buffer, 0, body)]
    if not lengths:
        return WHOLE
    # Any number of digits: compared as text first (int() refuses over 4,300 digits).
    if any(len(digits) > len(str(BODY_LIMIT)) or int(digits) > BODY_LIMIT
           for digits in lengths):
        return TOO_LARGE
    if expects:
        return CONTINUE
    return WHOLE if len(buffer) - body >= int(lengths[0]) else WAIT


def _without_expect(buffer: bytearray) -> bytearray:
    """buffer with its Expect: 100-continue line taken out, once the poller has answered it."""
    body = _head_end(buffer)
    match = _EXPECT_CONTINUE.search(buffer, 0, body)
    return buffer[:match.start() + 1] + buffer[match.end():]


def _refusal(status: str, message: str) -> bytes:
    body = (message + "\n").encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


REFUSALS = {
    HEAD_TOO_LARGE: _refusal("431 Request Header Fields Too Large",
                             f"The request head is over {HEAD_LIMIT} bytes."),
    TOO_LARGE: _refusal("413 Content Too Large", f"The request body is over {BODY_LIMIT} bytes."),
}
CONTINUE_ANSWER = b"HTTP/1.1 100 Continue\r\n\r\n"


class DeadlineSocket:
    """Wrap a client socket: reads stop at the request's deadline, writes after WRITE_SECONDS."""

    def __init__(self, sock: socket.socket, on_cut):
        self._sock = sock
        self._on_cut = on_cut
        self._read_deadline: float | None = None

    def __getattr__(self, name):
        return getattr(self._sock, name)

    @property
    def raw(self) -> socket.socket:
        return self._sock

    def new_request(self) -> None:
        """Start the clock again: the next read is the first byte of a new request."""
        self._read_deadline = None

    def _bounded(self, seconds: float, call, *args):
        previous = self._sock.gettimeout()
        self._sock.settimeout(max(seconds, 0.001))
        try:
            return call(*args)
        finally:
            try:
                self._sock.settimeout(previous)
            except OSError:
                pass

    def _cut(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._on_cut()

    def recv(self, size: int) -> bytes:
        if self._read_deadline is None:
            self._read_deadline = time.monotonic() + READ_SECONDS
        try:
            return self._bounded(self._read_deadline - time.monotonic(), self._sock.recv, size)
        except TimeoutError:
            # End of input, as far as gunicorn can tell: it drops the connection.
            self._cut()
            return b""

    def sendall(self, data) -> None:
        try:
            self._bounded(WRITE_SECONDS, self._sock.sendall, data)
        except TimeoutError:
            self._cut()
            raise BrokenPipeError("the client did not read the answer in time") from None

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        try:
            return self._bounded(WRITE_SECONDS, self._sock.sendfile, file, offset, count)
        except TimeoutError:
            self._cut()
            raise BrokenPipeError("the client did not read the answer in time") from None


class _CheckedBody:
    """A request body whose malformed framing stops the app's read with a 400, not a 500."""

    def __init__(self, body):
        self._body = body

    def _read(self, call, *args):
        try:
            return call(*args)
        except (ParseException, NoMoreData) as exc:
            # Flask answers an HTTPException with Rome's error page or JSON,
            # and logs no traceback. Gunicorn's body marks itself failed, so
            # the connection closes after this answer.
            raise BadRequest("The request body is malformed.") from exc

    def read(self, size=None):
        return self._read(self._body.read, size)

    def readline(self, size=None):
        return self._read(self._body.readline, size)

    def readlines(self, size=None):
        return self._read(self._body.readlines, size)

    def __iter__(self):
        return self

    def __next__(self):
        return self._read(self._body.__next__)


def checked_bodies(app):
    """Wrap a WSGI app: a body gunicorn's parser refuses (a bad chunk size) is a 400 to it.

    A chunked body is parsed as the app reads it, so the parser's error reached
    Flask, which answered 500 and logged a traceback, every time.
    """

    def wsgi(environ, start_response):
        environ["wsgi.input"] = _CheckedBody(environ["wsgi.input"])
        return app(environ, start_response)

    return wsgi


class SlowClientWorker(ThreadWorker):
    """Gunicorn's threaded worker that reads requests in its poller, not in threads.

    A thread is taken only once a request has arrived whole, head and body
    (Content-Length or chunked), so clients that dribble their requests cost a
    socket and at most REQUEST_BUFFER bytes, not a thread; one that has not sent
    it within READ_SECONDS is cut, and one whose head or body is over its limit
    is refused from the poller. An `Expect: 100-continue` is answered by the
    poller too, which then reads the body. In the thread, DeadlineSocket bounds
    each write of the answer (and any read gunicorn still makes).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Connections whose request is still arriving, with their deadlines.
        self._arriving: dict[TConn, float] = {}
        self._cut_lock = threading.Lock()
        self._cut_count = 0
        self._reported_at = time.monotonic() - REPORT_EVERY
        # Requests refused as too large since the last report (the poller's thread only).
        self._refused_count = 0
        self._refused_reported_at = time.monotonic() - REPORT_EVERY

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = checked_bodies(self.wsgi)

    def accept(self, listener):
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())
        if self._buffering:
            self._await_request(conn)
        else:
            self.enqueue_req(conn)

    def on_client_socket_readable(self, conn, client):
        # A kept-alive connection's next request, too, arrives in the poller first.
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        if self._buffering:
            self._await_request(conn)
        else:
            self.enqueue_req(conn)

    @property
    def _buffering(self) -> bool:
        # TLS and HTTP/2 start with a handshake gunicorn does in the thread:
        # those connections take gunicorn's own path. Rome uses neither.
        return not self.cfg.is_ssl and self.cfg.http2_cleartext == "off"

    def _await_request(self, conn) -> None:
        conn.buffered = bytearray()
        self._arriving[conn] = time.monotonic() + READ_SECONDS
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_request, conn))

    def _read_request(self, conn, _fileobj) -> None:
        raw = conn.sock.raw if isinstance(conn.sock, DeadlineSocket) else conn.sock
        try:
            # One byte past the limit, to tell a request at the limit from one over it.
            data = raw.recv(REQUEST_BUFFER + 1 - len(conn.buffered))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away, or closed its side
            if _head_end(conn.buffered) >= 0:
                # A head and part of a body: gunicorn's parser answers 400 at once,
                # reading the end of input, not waiting for more.
                self._hand_over(conn)
            else:
                self._drop_arriving(conn)
            return
        conn.buffered += data
        state = _request_state(conn.buffered)
        if state == CONTINUE:
            # Answered here, not by gunicorn in a thread that would then wait for the body.
            conn.buffered = _without_expect(conn.buffered)
            try:
                raw.send(CONTINUE_ANSWER)
            except OSError:  # a 25-byte answer that does not fit: a client not reading
                self._drop_arriving(conn)
                return
            state = _request_state(conn.buffered)
        if state == WAIT:
            return
        if state in REFUSALS:
            self._refuse(conn, raw, REFUSALS[state])
            return
        self._hand_over(conn)

    def _hand_over(self, conn) -> None:
        self.poller.unregister(conn.sock)
        del self._arriving[conn]
        self.enqueue_req(conn)

    def _refuse(self, conn, raw: socket.socket, answer: bytes) -> None:
        # Read what has already arrived, so that closing does not reset the connection
        # before the client reads the answer (more may still come: the answer is a courtesy).
        try:
            for _ in range(16):  # at most 1 MiB: a fast sender must not keep the poller here
                if not raw.recv(65536):
                    break
        except OSError:
            pass
        try:
            raw.send(answer)
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._drop_arriving(conn)
        # As slow clients are: the first refusal is told at once, then a count a minute.
        self._refused_count += 1
        now = time.monotonic()
        if now - self._refused_reported_at >= REPORT_EVERY:
            self.log.warning("event=requests_too_large count=%d head_limit=%d body_limit=%d",
                             self._refused_count, HEAD_LIMIT, BODY_LIMIT)
            self._refused_count, self._refused_reported_at = 0, now

    def _drop_arriving(self, conn) -> None:
        self.poller.unregister(conn.sock)
        del self._arriving[conn]
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self._arriving.items()):
            if deadline <= now:
                self._drop_arriving(conn)
                self._slow_client_cut()

    def handle(self, conn):
        if self._buffering:
            if not isinstance(conn.sock, DeadlineSocket):
                conn.sock = DeadlineSocket(conn.sock, self._slow_client_cut)
            conn.sock.new_request()
            buffered, conn.buffered = getattr(conn, "buffered", None), None
            if buffered:
                # Hand what the poller read to gunicorn's parser, as if unread.
                conn.data_ready = True
                conn.sock.setblocking(True)
                conn.init()
                conn.parser.unreader.unread(bytes(buffered))
        return super().handle(conn)

    def _keepalive_after(self, conn, keepalive):
        # Gunicorn reads what the app left of a body before the next request;
        # if that body is malformed, it would answer 400 after the app's own
        # answer, two answers to one request. The app has answered: close.
        try:
            return super()._keepalive_after(conn, keepalive)
        except ParseException as exc:
            self.log.debug("Closing connection after a malformed body: %s", exc)
            return False

    def _slow_client_cut(self) -> None:
        # The first cut is told at once, then the count at most once a minute.
        with self._cut_lock:
            self._cut_count += 1
            now = time.monotonic()
            if now - self._reported_at < REPORT_EVERY:
                return
            count, self._cut_count, self._reported_at = self._cut_count, 0, now
        self.log.warning(
            "event=slow_clients_cut count=%d read_limit=%.0f write_limit=%.0f",
            count, READ_SECONDS, WRITE_SECONDS,
        )


class RedactingLogger(Logger):
    """Gunicorn's logger, with secrets taken out of the access log's request line and referrer."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "f", "{raw_uri}e", "{query_string}e", "{http_referer}e",
                    "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_query(atoms[key])
        for key in ("{authorization}i", "{cookie}i", "{http_authorization}e",
                    "{http_cookie}e"):
            if key in atoms:
                atoms[key] = REDACTED
        return atoms
