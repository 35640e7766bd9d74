"""An HTTP front for docker-registry on 127.0.0.1 (python3 stdlib): forwards every request
to the registry and logs (method, path, Authorization sent?). Optionally it demands Basic
auth, and answers blob GETs with a 307 to a BlobHost: another server (another port, so
another host:port) that serves the blob and records the Authorization headers it got."""
import base64
import http.client
import http.server
import threading
import urllib.parse

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class _Server:
    """ThreadingHTTPServer on 127.0.0.1:0 running `handle(h)` for each request."""

    def __init__(self, handle):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(n) if n else b""
                handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _forward(h, upstream, path):
    """Sends h's request to upstream (host:port) at `path` and relays the answer."""
    c = http.client.HTTPConnection(upstream, timeout=60)
    hdrs = {k: v for k, v in h.headers.items() if k.lower() not in HOP and k.lower() != "host"}
    c.request(h.command, path, body=h.body or None, headers=hdrs)
    r = c.getresponse()
    data = r.read()
    c.close()
    _reply(h, r.status, [(k, v) for k, v in r.getheaders() if k.lower() not in HOP and k.lower() != "content-length"],
           data, length=r.getheader("Content-Length"))


def _reply(h, status, headers, data=b"", length=None):
    h.send_response(status)
    for k, v in headers:
        h.send_header(k, v)
    h.send_header("Content-Length", length if h.command == "HEAD" and length else str(len(data)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)


class BlobHost(_Server):
    """Serves GET /blob/<repo>/<digest> from the registry; `auth_seen` lists the
    Authorization header of every request (None when absent)."""

    def __init__(self, upstream):
        self.auth_seen = []

        def handle(h):
            with self.lock:
                self.auth_seen.append(h.headers.get("Authorization"))
            parts = urllib.parse.urlsplit(h.path).path.split("/", 2)  # "", "blob", "<repo>/<digest>"
            repo, _, digest = parts[2].rpartition("/")
            _forward(h, upstream, f"/v2/{repo}/blobs/{digest}")

        super().__init__(handle)


class RegistryFront(_Server):
    """Forwards to `upstream` ("127.0.0.1:PORT"); `log` holds (method, path, had_auth).
    creds=(user, password): anything without them gets 401 Basic. blob_host: blob GETs are
    redirected (307) there."""

    def __init__(self, upstream, creds=None, blob_host=None):
        self.log = []
        want = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode() if creds else None

        def handle(h):
            path = urllib.parse.urlsplit(h.path).path
            with self.lock:
                self.log.append((h.command, path, h.headers.get("Authorization") is not None))
            if want and h.headers.get("Authorization") != want:
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
                return _reply(h, 401, [("WWW-Authenticate", 'Basic realm="strata-test"'),
                                       ("Content-Type", "application/json")], body)
            repo, sep, digest = path[len("/v2/"):].rpartition("/blobs/")
            if blob_host and h.command == "GET" and sep and digest.startswith("sha256:"):
                return _reply(h, 307, [("Location", f"http://{blob_host.addr}/blob/{repo}/{digest}")])
            _forward(h, upstream, h.path)

        super().__init__(handle)

    def blob_gets(self, digest):
        """GET requests for a blob with this digest (any repository)."""
        with self.lock:
            return [p for m, p, _ in self.log if m == "GET" and p.endswith("/blobs/" + digest)]
