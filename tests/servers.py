"""Test helpers: small real servers on 127.0.0.1 for the password sources.

- `TestCa`: a throw-away CA and server certificates (trusted by tests through REQUESTS_CA_BUNDLE);
- `HttpsServer`: a threaded HTTPS server calling a route function per request;
- `ConnectProxy`: an HTTP CONNECT proxy that tunnels named hosts (e.g. `kv.vault.kms.test`) to local
  ports and refuses every other host, so cloud clients keep their real host names and TLS checks
  while nothing leaves the machine;
- `EntraServer` and `KeyVaultServer`: the OAuth2 client-credentials token endpoint and the Key Vault
  secret GET with its bearer challenge, as the Azure SDK talks to them;
- `VgsServer`: the VGS alias reveal endpoint with basic auth;
- `MotoServer`: moto in server mode (AWS), with IAM authentication switched on after set-up;
- `HostileApi`: a raw-socket HTTP server that answers chosen paths with byte-level misbehaviour (a trickle,
  an endless body, a huge chunk size, deep JSON...) and forwards every other request to a real upstream
  (the sandbox), so a daemon can be shown to survive the bad answers and still sign the good ones.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import os
import secrets
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Reply:
    """An HTTP answer: status, JSON body (or None) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """What a route function sees."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class TestCa:
    """A CA made for this test run; `issue` writes a server certificate and key for some host names."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tatum-kms test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.bundle = directory / "test-ca.pem"
        self.bundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, *names: str) -> tuple[Path, Path]:
        """(certificate, key) files for a server answering to `names` (host names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        stem = names[0].replace("*", "star")
        cert_path, key_path = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


class HttpsServer:
    """A threaded HTTPS server on 127.0.0.1 answering each request with `route(request)`; records requests."""

    def __init__(self, ca: TestCa, names: tuple[str, ...], route: Callable[[Request], Reply]) -> None:
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()},
                                  self.rfile.read(length) if length else b"")
                outer.requests.append(request)
                reply = route(request)
                body = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        cert, key = ca.issue(*names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 tunnelling `routes` {host: local port}; any other host gets 403."""

    def __init__(self, routes: dict[str, int]) -> None:
        self.routes = routes
        self.refused: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            head = read_head(client)
            if head is None:
                return
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or port != "443" or host not in self.routes:
                self.refused.append(target)
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            with socket.create_connection(("127.0.0.1", self.routes[host])) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pump(client, upstream)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def read_head(conn: socket.socket) -> bytes | None:
    """Read from `conn` until the end of an HTTP request head; None if the peer closes first."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        head += chunk
    return head


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {a: b, b: a}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 30)
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
                if data:
                    peers[sock].sendall(data)
            except OSError:  # a client that gives up on TLS resets the connection
                return
            if not data:
                return


class EntraServer:
    """The Microsoft Entra ID (Azure AD) endpoints ClientSecretCredential uses: OIDC discovery and the token POST.

    `apps` maps client id -> client secret; issued tokens are remembered with their client id and scope.
    """

    def __init__(self, ca: TestCa, host: str, tenant: str, apps: dict[str, str]) -> None:
        self.host, self.tenant, self.apps = host, tenant, apps
        self.tokens: dict[str, tuple[str, str]] = {}
        self.server = HttpsServer(ca, (host,), self._route)
        self.authority = f"https://{host}"

    def _route(self, request: Request) -> Reply:
        base = f"https://{self.host}/{self.tenant}"
        if request.method == "GET" and request.path == f"/{self.tenant}/v2.0/.well-known/openid-configuration":
            return Reply(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                               "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                               "issuer": f"{base}/v2.0", "tenant_region_scope": "EU"})
        if request.method == "POST" and request.path == f"/{self.tenant}/oauth2/v2.0/token":
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
            client_id = form.get("client_id", "")
            if form.get("grant_type") != "client_credentials" or self.apps.get(client_id) != form.get("client_secret"):
                return Reply(401, {"error": "invalid_client",
                                   "error_description": "AADSTS7000215: Invalid client secret provided."})
            token = secrets.token_urlsafe(32)
            self.tokens[token] = (client_id, form.get("scope", ""))
            return Reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                               "access_token": token})
        return Reply(404, {"error": "not_found"})

    def close(self) -> None:
        self.server.close()


class KeyVaultServer:
    """Key Vault's GET /secrets/{name}[/{version}] behind its bearer challenge.

    `secrets` maps (name, version) -> value, version "" meaning the latest; `readers` are the client ids
    with 'get' permission. Tokens are checked against `entra`'s, for the scope `resource`/.default.
    """

    def __init__(self, ca: TestCa, host: str, resource: str, entra: EntraServer,
                 secrets_: dict[tuple[str, str], str], readers: set[str]) -> None:
        self.host, self.resource, self.entra = host, resource, entra
        self.secrets, self.readers = secrets_, readers
        self.server = HttpsServer(ca, (host,), self._route)
        self.url = f"https://{host}"

    def _challenge(self) -> Reply:
        error = {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer token."}
        return Reply(401, {"error": error},
                     {"WWW-Authenticate": f'Bearer authorization="{self.entra.authority}/{self.entra.tenant}", '
                                          f'resource="{self.resource}"'})

    def _route(self, request: Request) -> Reply:
        auth = request.headers.get("authorization", "")
        granted = self.entra.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if granted is None or granted[1] != f"{self.resource}/.default":
            return self._challenge()
        parts = request.path.strip("/").split("/")
        if request.method != "GET" or parts[0] != "secrets" or len(parts) not in (2, 3):
            return Reply(400, {"error": {"code": "BadParameter", "message": "Unsupported request."}})
        if granted[0] not in self.readers:
            return Reply(403, {"error": {"code": "Forbidden", "message": "The user, group or application does not "
                                         "have secrets get permission on key vault.",
                                         "innererror": {"code": "AccessDenied"}}})
        name, version = parts[1], parts[2] if len(parts) == 3 else ""
        value = self.secrets.get((name, version))
        if value is None:
            return Reply(404, {"error": {"code": "SecretNotFound", "message": "A secret with the name was not found."}})
        stamp = int(time.time())
        version = version or "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # the latest version's id
        return Reply(200, {"value": value, "id": f"{self.url}/secrets/{name}/{version}",
                           "attributes": {"enabled": True, "created": stamp, "updated": stamp,
                                          "recoveryLevel": "Recoverable+Purgeable"}})

    def close(self) -> None:
        self.server.close()


class VgsServer:
    """VGS's GET /aliases/{alias} with HTTP basic auth; `aliases` maps alias -> value (None: a record with no value)."""

    def __init__(self, ca: TestCa, username: str, password: str, aliases: dict[str, str | None]) -> None:
        self._expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.aliases = aliases
        self.server = HttpsServer(ca, ("127.0.0.1", "localhost"), self._route)
        self.url = f"https://127.0.0.1:{self.server.port}"

    def _route(self, request: Request) -> Reply:
        if request.headers.get("authorization") != self._expected:
            return Reply(401, {"errors": [{"status": 401, "title": "Unauthorized"}]},
                         {"WWW-Authenticate": 'Basic realm="vault"'})
        parts = request.path.strip("/").split("/")
        if request.method != "GET" or len(parts) != 2 or parts[0] != "aliases" or parts[1] not in self.aliases:
            return Reply(404, {"errors": [{"status": 404, "title": "Not Found", "detail": "Alias not found"}]})
        value = self.aliases[parts[1]]
        record = {"aliases": [{"alias": parts[1], "format": "UUID"}], "created_at": "2026-01-01T00:00:00Z"}
        if value is not None:
            record["value"] = value
        return Reply(200, {"data": [record]})

    def close(self) -> None:
        self.server.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """moto in server mode on 127.0.0.1; IAM authentication is enforced after `free_actions` set-up calls."""

    def __init__(self, free_actions: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        moto = Path(sys.executable).parent / "moto_server"
        self._process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(free_actions)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


@dataclass
class RawRequest:
    """A request as `HostileApi` read it: method, path (query dropped), lower-cased headers, body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


#: What `HostileApi` does with a request: write whatever it likes on the socket; True keeps the connection.
Behaviour = Callable[[socket.socket, RawRequest], bool]


class HostileApi:
    """An HTTP/1.1 server on 127.0.0.1 built on raw sockets. `routes` maps "METHOD /path" to a `Behaviour`;
    any other request is forwarded to `upstream` (scheme://host:port) and its answer relayed. Every request
    is recorded in `requests` as "METHOD /path" (before it is answered)."""

    def __init__(self, upstream: str | None = None, routes: dict[str, Behaviour] | None = None) -> None:
        self.upstream = urlsplit(upstream) if upstream else None
        self.routes: dict[str, Behaviour] = dict(routes or {})
        self.requests: list[str] = []
        self.arrived = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def wait_for(self, request: str, timeout: float = 30) -> None:
        """Block until a request "METHOD /path" has arrived."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: request in self.requests, timeout):
                raise AssertionError(f"{request} never arrived (got {self.requests})")

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    @property
    def stopped(self) -> bool:
        return self._closed.is_set()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffered = b""
            while not self._closed.is_set():
                while b"\r\n\r\n" not in buffered:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buffered += chunk
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length") or 0)
                while len(buffered) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                body, buffered = buffered[:length], buffered[length:]
                request = RawRequest(method, target.split("?", 1)[0], headers, body)
                with self.arrived:
                    self.requests.append(f"{method} {request.path}")
                    self.arrived.notify_all()
                behaviour = self.routes.get(f"{method} {request.path}", self._forward)
                try:
                    if not behaviour(conn, request):
                        return
                except OSError:  # the client gave up on us: what a hostile server hopes for
                    return

    def _forward(self, conn: socket.socket, request: RawRequest) -> bool:
        status, content_type, body = self.fetch(request)
        conn.sendall(f"HTTP/1.1 {status} Relayed\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body)
        return True

    def fetch(self, request: RawRequest) -> tuple[int, str, bytes]:
        """`request` as the upstream answers it: (status, content type, body)."""
        if self.upstream is None:
            return 404, "text/plain", b"no upstream"
        upstream = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k in ("x-api-key", "content-type")}
            upstream.request(request.method, request.path, request.body or None, headers)
            reply = upstream.getresponse()
            return reply.status, reply.getheader("Content-Type") or "application/json", reply.read()
        finally:
            upstream.close()
