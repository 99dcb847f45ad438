"""Tests for runtime/server/access.py: client allowlist, connection cap and release, idle timeout, and TLS with
client certificates on its own port (certificates made in the test with the openssl CLI)."""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.client import ModbusTlsClient
from server_helpers import make_server, sim_scan

from runtime.config.settings import section_of
from runtime.server import Server
from runtime.server.access import Gate
from runtime.server.protocol import ServerStats
from runtime.tags import TagDB

READ = struct.pack(">HHHBBHH", 1, 0, 6, 1, 0x03, 0, 1)


def closed_at_once(sock: socket.socket, within: float = 1.0) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(100) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def answers(sock: socket.socket) -> bool:
    sock.settimeout(2)
    try:
        sock.sendall(READ)
        return sock.recv(100)[7:8] == b"\x03"
    except OSError:
        return False


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.168.1.20", True), ("192.168.2.20", False), ("10.0.0.1", False), ("fe80::1%eth0", False),
    ("not-an-address", False),
])
def test_allowlist_matches_networks(host: str, allowed: bool) -> None:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        gate = Gate(loop, section_of("server", {"allow": ["127.0.0.0/8", "::1/128", "192.168.1.0/24"]}), ServerStats())
        assert gate.allowed(host) is allowed
    finally:
        loop.close()


def test_client_outside_the_allowlist_is_closed_at_once_and_logged(db: TagDB,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(db, allow=["10.0.0.0/8"])
    try:
        with socket.create_connection(server.address) as sock:
            assert closed_at_once(sock)
        assert server.stats.connections_refused == 1 and server.stats.connections_accepted == 0
        assert any("not in the allowed networks (10.0.0.0/8)" in r.getMessage() for r in caplog.records)
    finally:
        server.stop()


def test_connection_cap_refuses_the_excess_and_frees_slots(db: TagDB) -> None:
    server = make_server(db, max_connections=2)
    try:
        first, second = (socket.create_connection(server.address) for _ in range(2))
        assert answers(first) and answers(second)
        with socket.create_connection(server.address) as third:
            assert closed_at_once(third)
        first.close()
        time.sleep(0.1)
        with socket.create_connection(server.address) as fourth:
            assert answers(fourth)
        second.close()
    finally:
        server.stop()


def test_an_active_client_is_not_idle(db: TagDB) -> None:
    server = make_server(db, idle_timeout=0.4)
    try:
        with socket.create_connection(server.address) as sock:
            for _ in range(8):  # 1.6 s, four idle timeouts, one request every 0.2 s
                assert answers(sock)
                time.sleep(0.2)
        assert server.stats.connections_idle_closed == 0
    finally:
        server.stop()


def test_server_cannot_listen_on_a_taken_port(db: TagDB) -> None:
    first = make_server(db)
    try:
        with pytest.raises(OSError):
            make_server(db, port=first.address[1], listen="127.0.0.1")
    finally:
        first.stop()


# ---- TLS ------------------------------------------------------------------------------------------------------

OPENSSL = shutil.which("openssl")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL or "openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(folder: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=folder)


def make_cert(folder: Path, name: str, ca: str, extensions: str, subject: str | None = None) -> None:
    (folder / f"{name}.ext").write_text(extensions + "\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", subject or f"/CN={name}", cwd=folder)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site CA with a server and an HMI client certificate, and a rogue CA with its own client."""
    if OPENSSL is None:
        pytest.skip("neither the cryptography package nor the openssl CLI is installed to make test certificates")
    folder = tmp_path_factory.mktemp("pki")
    make_ca(folder, "site-ca")
    make_cert(folder, "server", "site-ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    make_cert(folder, "hmi", "site-ca", "extendedKeyUsage=clientAuth")
    make_ca(folder, "rogue-ca")
    make_cert(folder, "intruder", "rogue-ca", "extendedKeyUsage=clientAuth")
    return folder


@pytest.fixture
def tls_server(db: TagDB, pki: Path) -> Iterator[Server]:
    # Relative file names resolve against the site folder, as in tags.yaml.
    server = Server(db, {"port": 0, "idle_timeout": 1.0,
                         "tls": {"port": 0, "cert": "server.crt", "key": "server.key", "ca": "site-ca.crt"}},
                    base_dir=pki)
    server.start()
    yield server
    server.stop()


def client_context(pki: Path, cert: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "site-ca.crt"))
    if cert:
        context.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    return context


def tls_exchange(server: Server, context: ssl.SSLContext) -> bytes:
    """Send one read over TLS; return the answer ('' when the server closed instead)."""
    assert server.tls_address is not None
    with socket.create_connection(server.tls_address, timeout=3) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(READ)
        try:
            return sock.recv(100)
        except (ssl.SSLError, ConnectionResetError):
            return b""


def test_tls_round_trip_with_a_client_certificate(tls_server: Server, pki: Path, db: TagDB,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="battplc.server")
    host, port = tls_server.tls_address  # type: ignore[misc]
    context = client_context(pki, "hmi")
    context.check_hostname = False  # pymodbus's sync TLS client passes no server name; the chain is still checked
    client = ModbusTlsClient(host, port=port, sslctx=context, timeout=3, retries=0)
    assert client.connect()
    try:
        response = client.read_input_registers(6, count=2, device_id=1)
        assert client.convert_from_registers(response.registers, client.DATATYPE.FLOAT32) == 53.25
        assert not client.write_register(100, 321, device_id=1).isError()
    finally:
        client.close()
    sim_scan(db, tls_server).step()
    assert db["par.offset"] == 321
    assert any("authenticated as 'hmi'" in r.getMessage() for r in caplog.records)


def test_tls_refuses_a_client_without_a_certificate(tls_server: Server, pki: Path) -> None:
    assert tls_exchange(tls_server, client_context(pki, None)) == b""


def test_tls_refuses_a_certificate_from_another_ca(tls_server: Server, pki: Path) -> None:
    assert tls_exchange(tls_server, client_context(pki, "intruder")) == b""


def test_tls_port_checks_the_allowlist_before_any_handshake(db: TagDB, pki: Path) -> None:
    server = Server(db, {"port": 0, "allow": ["10.0.0.0/8"],
                         "tls": {"port": 0, "cert": "server.crt", "key": "server.key", "ca": "site-ca.crt"}},
                    base_dir=pki)
    server.start()
    try:
        with socket.create_connection(server.tls_address) as sock:  # type: ignore[arg-type]
            assert closed_at_once(sock)  # no ServerHello, nothing: closed
    finally:
        server.stop()


def test_tls_client_that_never_says_hello_is_dropped(tls_server: Server) -> None:
    with socket.create_connection(tls_server.tls_address) as sock:  # type: ignore[arg-type]
        assert not closed_at_once(sock, within=0.3)
        assert closed_at_once(sock, within=3.0)


def test_plain_port_keeps_working_beside_tls(tls_server: Server) -> None:
    with socket.create_connection(tls_server.address) as sock:
        assert answers(sock)
