"""Sockets inside a network namespace, from the host process.

setns(2) with CLONE_NEWNET switches only the calling thread, and a socket stays in the
namespace it was created in. So a short-lived thread enters the namespace, makes the
socket (and connects it), and the socket is then usable from any thread of the host
process. Python 3.11 has no os.setns, hence ctypes.
"""
import ctypes
import errno
import os
import socket
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def in_netns(ns_path, fn, *args, **kwargs):
    """Runs fn(*args, **kwargs) in a thread that has entered the namespace at ns_path
    (e.g. /run/netns/NAME) and returns its result (or raises its exception)."""
    box = {}

    def target():
        try:
            fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, "setns(%s): %s" % (ns_path, os.strerror(e)))
            finally:
                os.close(fd)
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=target, name="netns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def connect(ns_path, host, port, timeout=10.0):
    """A TCP socket connected from inside the namespace to host:port."""
    def make():
        s = socket.socket(_family(host), socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((host, port))
        except BaseException:
            s.close()
            raise
        return s
    return in_netns(ns_path, make)


def make_socket(ns_path, family=socket.AF_INET, type=socket.SOCK_STREAM):
    """An unconnected socket created inside the namespace (bind/connect it yourself)."""
    return in_netns(ns_path, socket.socket, family, type)


def wait_port(ns_path, host, port, timeout=20.0, proc=None):
    """Waits until host:port accepts a TCP connection seen from inside the namespace.
    Raises TimeoutError (or RuntimeError when `proc`, a Proc, exits first)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with status %s before %s:%d was up; log:\n%s" %
                               (proc.name, proc.returncode, host, port, proc.log_tail()))
        try:
            connect(ns_path, host, port, timeout=1.0).close()
            return
        except OSError as e:
            last = e
            if e.errno not in (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.ECONNRESET,
                               errno.EHOSTUNREACH, errno.ENETUNREACH, None):
                raise
        time.sleep(0.05)
    raise TimeoutError("%s:%d not accepting connections after %.0f s (%s)" %
                       (host, port, timeout, last))


def http_get(ns_path, host, port, path, timeout=10.0, method="GET", headers=None):
    """A small HTTP/1.1 request from inside the namespace; returns (status, headers, body)."""
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = connect(ns_path, host, port, timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()
