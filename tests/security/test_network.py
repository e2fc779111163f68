"""Escape attempts over the network: nothing leaves the sandbox, not even to the host's loopback."""

from __future__ import annotations

from tests.security.conftest import Box, Listener


def test_tcp_to_a_listener_on_the_hosts_loopback_fails(box: Box, listener: Listener) -> None:
    result = box.py(
        f"import socket\ntry:\n socket.create_connection(('127.0.0.1', {listener.tcp_port}), timeout=2)\n"
        " print('CONNECTED')\nexcept OSError as e:\n print('refused', e)"
    )
    assert "refused" in result.stdout and "CONNECTED" not in result.stdout
    assert listener.received == []


def test_udp_to_a_listener_on_the_hosts_loopback_never_arrives(box: Box, listener: Listener) -> None:
    result = box.py(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range(5): s.sendto(b'x', ('127.0.0.1', {listener.udp_port}))\nprint('sent')"
    )
    assert result.exit_code == 0
    assert listener.received == []


def test_dns_queries_reach_no_resolver(box: Box, listener: Listener) -> None:
    # A DNS query to a resolver listening on the host's loopback, and a name lookup through the
    # system resolver: neither gets an answer, and the host-side listener sees nothing.
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    result = box.py(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(1)\n"
        f"s.sendto({query!r}, ('127.0.0.1', {listener.udp_port}))\n"
        "try:\n s.recvfrom(512); print('ANSWER')\nexcept OSError: print('no answer')\n"
        "try:\n socket.getaddrinfo('shipway-canary.invalid', 443); print('RESOLVED')\n"
        "except OSError as e: print('lookup failed', e)"
    )
    assert "no answer" in result.stdout and "lookup failed" in result.stdout
    assert listener.received == []


def test_only_a_private_loopback_interface_exists_and_there_is_no_route_out(box: Box) -> None:
    result = box.py(
        "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        # UDP connect() only picks a route; it sends nothing, so this probes without traffic.
        "try:\n s.connect(('10.255.255.1', 9)); print('ROUTE')\nexcept OSError as e: print('unreachable', e.errno)"
    )
    assert "['lo']" in result.stdout and "unreachable" in result.stdout


def test_abstract_unix_sockets_of_the_host_are_out_of_reach(box: Box) -> None:
    import socket

    name = b"\0shipway-canary-abstract"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    server.listen()
    try:
        result = box.py(
            "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            f"try:\n s.connect({name!r}); print('CONNECTED')\nexcept OSError as e: print('refused', e)"
        )
    finally:
        server.close()
    assert "refused" in result.stdout
