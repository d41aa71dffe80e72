"""What the demo apps share: a JSON-over-HTTP/1.1 request handler, the threaded server
that runs it, and name resolution done the way an app without a DNS cache does it."""
import http.server
import json
import random
import socket


def pick_address(host, port):
    """Resolves host on every call and picks one of its A records, so every call also
    makes real DNS traffic and spreads over the Service's pods."""
    addrs = [a[4][0] for a in socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)]
    return random.choice(addrs)


class JSONHandler(http.server.BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1, quiet; subclasses set server_version and the do_* methods."""
    protocol_version = "HTTP/1.1"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="application/json"):
        """Sends body (bytes as they are, anything else as JSON) with its length."""
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(port, handler, banner, **settings):
    """Serves handler on 0.0.0.0:port, one thread per connection, until interrupted;
    settings become attributes of the server (self.server.NAME in the handler)."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), handler)
    server.daemon_threads = True
    for name, value in settings.items():
        setattr(server, name, value)
    print(banner, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
