"""HTTP fronts for docker-registry on loopback (python3 stdlib), to see what strata sends
where. A RegistryFront forwards every request to the registry and logs it; optionally it
demands Basic auth or a Bearer token, answers blob GETs with a 307 to blob storage elsewhere,
and listens for TLS and plain HTTP on one port. A BlobHost is such storage on another
host:port. A TokenServer is a Bearer realm. Every server records the Authorization header of
each request it got (`seen`)."""
import base64
import http.client
import http.server
import json
import socket
import ssl
import sys
import threading
import urllib.parse

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class _Server:
    """ThreadingHTTPServer on bind:0 running `handle(h)` for each request. With `tls` (an
    ssl.SSLContext) a connection that opens with a TLS handshake is served over TLS and any
    other as plain HTTP, on the same port; `h.scheme` says which. `seen` lists
    (scheme, method, path, Authorization or None) for every request."""

    def __init__(self, handle, bind="127.0.0.1", tls=None):
        self.seen = []
        self.lock = threading.Lock()
        server = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                self.scheme = "http"
                if tls is not None:
                    self.request.settimeout(10)
                    if self.request.recv(1, socket.MSG_PEEK) == b"\x16":
                        self.request = tls.wrap_socket(self.request, server_side=True)
                        self.scheme = "https"
                    self.request.settimeout(None)
                super().setup()

            def do_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(n) if n else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    self.body = _read_chunked(self.rfile)
                with server.lock:
                    server.seen.append((self.scheme, self.command, urllib.parse.urlsplit(self.path).path,
                                        self.headers.get("Authorization")))
                handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_any

        self.httpd = http.server.ThreadingHTTPServer((bind, 0), H)
        self.httpd.daemon_threads = True
        default_handle_error = self.httpd.handle_error

        def handle_error(request, client_address):
            # A client that hangs up mid-answer (as strata does on an oversized blob) is no error.
            if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
                default_handle_error(request, client_address)

        self.httpd.handle_error = handle_error
        self.port = self.httpd.server_address[1]
        self.addr = f"{bind}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def with_auth(self):
        """The requests that carried an Authorization header."""
        with self.lock:
            return [s for s in self.seen if s[3] is not None]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _read_chunked(rfile):
    out = b""
    while True:
        size = int(rfile.readline().split(b";")[0], 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return out
        out += rfile.read(size)
        rfile.readline()


def _forward(h, upstream, path, location=lambda loc: loc):
    """Sends h's request to upstream (host:port) at `path` and relays the answer, its
    Location passed through `location`."""
    c = http.client.HTTPConnection(upstream, timeout=60)
    hdrs = {k: v for k, v in h.headers.items() if k.lower() not in HOP and k.lower() not in ("host", "content-length", "expect")}
    c.request(h.command, path, body=h.body if h.command in ("PUT", "POST", "PATCH") else None, headers=hdrs)
    r = c.getresponse()
    data = r.read()
    c.close()
    headers = []
    for k, v in r.getheaders():
        if k.lower() in HOP or k.lower() == "content-length":
            continue
        headers.append((k, location(v) if k.lower() == "location" else v))
    _reply(h, r.status, headers, data, length=r.getheader("Content-Length"))


def _reply(h, status, headers, data=b"", length=None):
    h.send_response(status)
    for k, v in headers:
        h.send_header(k, v)
    h.send_header("Content-Length", length if h.command == "HEAD" and length else str(len(data)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)


def _unauthorized(h, challenge):
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
    _reply(h, 401, [("WWW-Authenticate", challenge), ("Content-Type", "application/json")], body)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class BlobHost(_Server):
    """Serves GET /blob/<repo>/<digest> from the registry, asking for no credentials (blob
    storage, a CDN); `auth_seen` lists the Authorization header of every request."""

    def __init__(self, upstream, bind="127.0.0.1"):
        def handle(h):
            parts = urllib.parse.urlsplit(h.path).path.split("/", 2)  # "", "blob", "<repo>/<digest>"
            repo, _, digest = parts[2].rpartition("/")
            _forward(h, upstream, f"/v2/{repo}/blobs/{digest}")

        super().__init__(handle, bind)

    @property
    def auth_seen(self):
        with self.lock:
            return [s[3] for s in self.seen]


class RegistryFront(_Server):
    """Forwards to `upstream` ("127.0.0.1:PORT"); `log` holds (method, path, had_auth).
    creds=(user, password): anything without them gets 401 Basic. bearer=(realm, service,
    token): anything without "Bearer token" gets 401 with that Bearer challenge.
    blob_redirect: a base URL; blob GETs get a 307 to BASE/blob/<repo>/<digest>, which any
    BlobHost serves (this front too, without asking for credentials). The registry's own
    Locations are rewritten to point at this front (`upload_to` instead: upload sessions
    move to that base URL). `intercept(h, path)`, when set, may answer a request after the
    auth check: it returns True when it did."""

    def __init__(self, upstream, creds=None, bearer=None, blob_redirect=None, blob_host=None, bind="127.0.0.1",
                 tls=None, upload_to=None):
        self.log = []
        self.intercept = None
        self.blob_redirect = f"http://{blob_host.addr}" if blob_host is not None else blob_redirect
        self.upload_to = upload_to
        want = basic(*creds) if creds else "Bearer " + bearer[2] if bearer else None
        challenge = 'Basic realm="strata-test"' if creds else \
            f'Bearer realm="{bearer[0]}",service="{bearer[1]}"' if bearer else None

        def handle(h):
            path = urllib.parse.urlsplit(h.path).path
            with self.lock:
                self.log.append((h.command, path, h.headers.get("Authorization") is not None))
            own = f"{h.scheme}://{self.addr}"
            if path.startswith("/blob/"):
                repo, _, digest = path[len("/blob/"):].rpartition("/")
                return _forward(h, upstream, f"/v2/{repo}/blobs/{digest}")
            if want and h.headers.get("Authorization") != want:
                return _unauthorized(h, challenge)
            if self.intercept and self.intercept(h, path):
                return
            repo, sep, digest = path[len("/v2/"):].rpartition("/blobs/")
            if self.blob_redirect and h.command == "GET" and sep and digest.startswith("sha256:"):
                return _reply(h, 307, [("Location", f"{self.blob_redirect}/blob/{repo}/{digest}")])
            to = self.upload_to if self.upload_to and "/blobs/uploads/" in path else own
            _forward(h, upstream, h.path, lambda loc: loc.replace(f"http://{upstream}", to, 1))

        super().__init__(handle, bind, tls)

    def blob_gets(self, digest):
        """GET requests for a blob with this digest (any repository)."""
        with self.lock:
            return [p for m, p, _ in self.log if m == "GET" and p.endswith("/blobs/" + digest)]


class TokenServer(_Server):
    """A Bearer realm at http://bind:PORT/token: hands out `token` (as {"token": ...}) to any
    request, or with anonymous=False only to one carrying Basic `creds`."""

    def __init__(self, token, creds=None, anonymous=True, bind="127.0.0.1"):
        want = basic(*creds) if creds else None

        def handle(h):
            auth = h.headers.get("Authorization")
            if auth != want and not (anonymous and auth is None):
                return _reply(h, 401, [("Content-Type", "application/json")], b'{"details":"access denied"}')
            _reply(h, 200, [("Content-Type", "application/json")], json.dumps({"token": token}).encode())

        super().__init__(handle, bind)
        self.realm = f"http://{self.addr}/token"


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
