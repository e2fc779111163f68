"""The preview's relay, run *inside* the sandbox: `relay.py SOCKET PORT LOG -- COMMAND...`.

The sandbox has a network namespace of its own, so the host cannot open a TCP connection to
the preview's port. A Unix socket is a file, not a network endpoint: the relay listens on one
in a directory the host can also see, and carries every connection made to it to
127.0.0.1:PORT inside the sandbox. The host side (tools/preview/forward.py) turns a loopback
TCP port into connections to that socket.

The relay starts COMMAND with PORT and HOST set, writes its output to LOG (capped), and exits
with COMMAND's status (128+N when a signal N ended it). SIGTERM is passed on to COMMAND.

Standard library only, and no imports from Shipway: this file is executed by path in the
sandbox, where the project's packages may not be on sys.path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import BinaryIO

LOG_CAP_BYTES = 4 << 20
CHUNK = 64 * 1024
MAX_CONNECTIONS = 64


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes one way until either side closes, then close the sink's write half."""
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def carry(client: socket.socket, port: int, slots: threading.BoundedSemaphore) -> None:
    try:
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return  # not listening yet: the host sees the connection close and retries
        upstream.settimeout(None)
        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()
        upstream.close()
    finally:
        client.close()
        slots.release()


def serve(listener: socket.socket, port: int) -> None:
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        slots.acquire()
        threading.Thread(target=carry, args=(client, port, slots), daemon=True).start()


def copy_output(stream: object, log_path: str) -> None:
    """Drain the command's output into the log, up to the cap; keep draining after it (or without a log),
    so the command never blocks on a full pipe."""
    written = 0
    try:
        log: BinaryIO = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed below, after the loop
    except OSError:
        log, written = open(os.devnull, "wb"), LOG_CAP_BYTES  # noqa: SIM115
    with log:
        while chunk := stream.read1(CHUNK):  # type: ignore[attr-defined]
            if written < LOG_CAP_BYTES:
                log.write(chunk[: LOG_CAP_BYTES - written])
                written += len(chunk)
                if written >= LOG_CAP_BYTES:
                    log.write(b"\n[... shipway: the preview's log reached its cap; later output is dropped ...]\n")


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print("usage: relay.py SOCKET PORT LOG -- COMMAND...", file=sys.stderr)
        return 2
    sock_path, port, log_path, command = argv[0], int(argv[1]), argv[2], argv[4:]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    os.chmod(sock_path, 0o600)
    listener.listen(MAX_CONNECTIONS)
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=env)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    threading.Thread(target=serve, args=(listener, port), daemon=True).start()
    copier = threading.Thread(target=copy_output, args=(child.stdout, log_path), daemon=True)
    copier.start()
    code = child.wait()
    copier.join(timeout=2)
    listener.close()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
