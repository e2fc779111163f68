"""The host side of a preview's port: a loopback TCP listener that carries each connection to
the relay's Unix socket (tools/preview/relay.py), and from there into the sandbox.

Only 127.0.0.1 is ever bound. The socket's directory belongs to the sandbox, so what sits at
that path is the sandbox's choice: it could be a link to another socket on the host (a Docker
daemon's, an SSH agent's). Every connection is therefore checked after connecting: the peer
(SO_PEERCRED) must be the relay itself, the process whose command line names this socket.

The byte pump mirrors the relay's: the relay must stay a standalone file that imports nothing
of ours, so the dozen lines exist twice.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from pathlib import Path

CHUNK = 64 * 1024
MAX_CONNECTIONS = 64


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class PortForwarder:
    """127.0.0.1:<port> -> the Unix socket at `target`, one pair of threads per connection."""

    def __init__(self, target: Path, port: int = 0) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", port), backlog=MAX_CONNECTIONS)
        self.port: int = self.listener.getsockname()[1]
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._thread = threading.Thread(target=self._accept, name="preview-forwarder", daemon=True)

    def start(self) -> PortForwarder:
        self._thread.start()
        return self

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _is_relay(self, upstream: socket.socket) -> bool:
        """The listening end is the preview's relay (not a socket the sandbox pointed us at)."""
        try:
            creds = upstream.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid = struct.unpack("3i", creds)[0]
            return pid > 0 and str(self.target).encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._slots.acquire()
            threading.Thread(target=self._carry, args=(client,), daemon=True).start()

    def _carry(self, client: socket.socket) -> None:
        try:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(str(self.target))
            except OSError:
                upstream.close()
                return  # the relay is not up yet (or gone): the client sees the connection close
            if not self._is_relay(upstream):
                upstream.close()
                return
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()
            upstream.close()
        finally:
            client.close()
            self._slots.release()
