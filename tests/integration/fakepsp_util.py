"""A hostile PSP for the review tests (61x): a loopback HTTP server whose answers the test
writes, recording every request it got (method, path, headers, body). It speaks only what
the test tells it to; it never charges anything."""
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakePsp:
    def __init__(self, answer):
        """answer(method, path, headers, body) -> (status, content_type, body bytes)."""
        self.requests = []
        self.lock = threading.Lock()
        fake = self

        class H(BaseHTTPRequestHandler):
            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with fake.lock:
                    fake.requests.append((self.command, self.path, dict(self.headers.items()),
                                          body))
                status, ctype, out = answer(self.command, self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _any

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.keys = {"native": "sbx_" + secrets.token_hex(12), "stripe": "sk_test_" + secrets.token_hex(12)}
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def charge_body(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}
