"""StreamSpace hostile test image: serves the attack page, stdlib only.

  GET /            index.html (the attacks, in attack.js)
  GET /attack.js
  GET /sw.js       the service worker, with `Service-Worker-Allowed: /` so it
                   may claim the widest scope its origin allows
  GET /api/health  200 "ok" (the agent's readiness probe)

Listens on 0.0.0.0:$PORT (default 8080); SIGTERM stops it at once.
"""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WWW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "www")
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/attack.js": ("attack.js", "text/javascript; charset=utf-8"),
    "/sw.js": ("sw.js", "text/javascript; charset=utf-8"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "streamspace-hostile"

    def do_GET(self):
        path = self.path.partition("?")[0]
        if path == "/api/health":
            return self.send(200, b"ok", "text/plain; charset=utf-8")
        if path not in FILES:
            return self.send(404, b"not found\n", "text/plain; charset=utf-8")
        name, content_type = FILES[path]
        with open(os.path.join(WWW, name), "rb") as fh:
            body = fh.read()
        extra = [("Service-Worker-Allowed", "/")] if name == "sw.js" else []
        return self.send(200, body, content_type, extra)

    def send(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # the page's traffic is not worth a log line


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    # As PID 1 a process gets no default SIGTERM action: exit on it, so
    # `docker stop` does not wait out its timeout.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"streamspace-hostile listening on 0.0.0.0:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
