"""The test suite's mosquitto: passwords, a TLS listener with a fresh test PKI, persistence,
and stop/start/restart/kill for outage tests. Built on the runtime's plain LocalBroker.

    TestBroker(persistence=True)                  # plain, anonymous; sessions survive restart()
    TestBroker(users={"edge": "pw"}, tls=True)    # password required, extra TLS listener
                                                  # (broker.tls_port, broker.ca_file)
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from edge.publish.local_broker import BrokerError, LocalBroker, free_port


def mosquitto_password_line(username: str, password: str, iterations: int = 101) -> str:
    """One password-file line in mosquitto 2's sha512-pbkdf2 format (``$7$``)."""
    if ":" in username:
        raise ValueError("username must not contain ':'")
    salt = secrets.token_bytes(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    b64 = base64.b64encode
    return f"{username}:$7${iterations}${b64(salt).decode()}${b64(dk).decode()}"


def write_password_file(path: Path, users: dict[str, str]) -> None:
    """Write a mosquitto password file (mosquitto_passwd when installed, else in Python)."""
    tool = shutil.which("mosquitto_passwd") or (
        "/usr/bin/mosquitto_passwd" if os.access("/usr/bin/mosquitto_passwd", os.X_OK) else None
    )
    path.write_text("")
    os.chmod(path, 0o600)
    if tool:
        for user, pw in users.items():
            subprocess.run(
                [tool, "-b", str(path), user, pw],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=30,
            )
        return
    path.write_text("".join(mosquitto_password_line(u, p) + "\n" for u, p in users.items()))


def make_test_pki(
    directory: Path,
    hostnames: tuple[str, ...] = ("localhost",),
    *,
    server_validity: tuple[str, str] | None = None,
) -> dict[str, Path]:
    """Create a CA, a server cert (SAN 127.0.0.1 + hostnames) and a client cert with openssl.

    Returns paths: ca_file, ca_key, server_cert, server_key, client_cert, client_key.
    EC P-256 keys, valid 2 days. ``server_validity`` (``("YYYYMMDDHHMMSSZ",
    "YYYYMMDDHHMMSSZ")``) gives the server cert explicit dates, e.g. an expired one (signed
    with ``openssl ca``: OpenSSL before 3.4 has no other way).
    """
    openssl = shutil.which("openssl")
    if not openssl:
        raise BrokerError("the openssl command is needed to make TLS test certificates")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p = {
        "ca_file": d / "ca.crt",
        "ca_key": d / "ca.key",
        "server_cert": d / "server.crt",
        "server_key": d / "server.key",
        "client_cert": d / "client.crt",
        "client_key": d / "client.key",
    }
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        r = subprocess.run(
            [openssl, *args], cwd=d, capture_output=True, text=True, timeout=60, check=False
        )
        if r.returncode != 0:
            raise BrokerError(f"openssl {args[0]} failed: {r.stderr.strip()[-500:]}")

    run(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=face-edge test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    san = ",".join(["IP:127.0.0.1", *(f"DNS:{h}" for h in hostnames)])
    (d / "server.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    (d / "client.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    for name, cn in (
        ("server", hostnames[0] if hostnames else "localhost"),
        ("client", "face-edge"),
    ):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        if name == "server" and server_validity:
            (d / "ca.cnf").write_text(
                "[ca]\ndefault_ca = test_ca\n[test_ca]\ndatabase = index.txt\n"
                "new_certs_dir = .\nserial = ca.srl\ndefault_md = sha256\n"
                "policy = any\nunique_subject = no\n[any]\ncommonName = supplied\n"
            )
            (d / "index.txt").write_text("")
            (d / "ca.srl").write_text("1000\n")
            run(
                "ca", "-batch", "-config", "ca.cnf", "-in", "server.csr", "-out", "server.crt",
                "-cert", "ca.crt", "-keyfile", "ca.key", "-notext", "-extfile", "server.ext",
                "-startdate", server_validity[0], "-enddate", server_validity[1],
            )  # fmt: skip
            continue
        run(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        )  # fmt: skip
    for key in ("ca_key", "server_key", "client_key"):
        os.chmod(p[key], 0o600)
    return p


class TestBroker(LocalBroker):
    """LocalBroker plus what tests need.

    ``users``: username -> password; when given, anonymous access is off on every listener
    (``password_file`` may be rewritten, then ``restart()``). ``tls``: also open a TLS
    listener on ``tls_port`` with a freshly made CA (``ca_file``) and server cert; with
    ``require_client_cert`` clients must present a cert signed by that CA
    (``client_cert_file``/``client_key_file``); ``pki``: use these (``make_test_pki``'s
    result, e.g. with an expired server cert) instead of fresh ones. ``persistence``: keep
    sessions and queued messages across ``stop()``/``start()`` (saved on shutdown).
    ``verbose``: log everything mosquitto can (``log_tail()``).
    """

    __test__ = False  # a helper, not a test class, despite the name

    def __init__(
        self,
        port: int | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
        tls_port: int | None = None,
        require_client_cert: bool = False,
        persistence: bool = False,
        verbose: bool = False,
        mosquitto: str | None = None,
        start: bool = True,
        pki: dict[str, Path] | None = None,
    ) -> None:
        super().__init__(port, mosquitto=mosquitto, start=False)
        self.users = dict(users or {})
        self.tls = bool(tls)
        self.require_client_cert = bool(require_client_cert)
        self.persistence = bool(persistence)
        self.verbose = bool(verbose)
        self._fixed_tls_port = tls_port is not None
        self.tls_port: int | None = None
        if self.tls:
            self.tls_port = int(tls_port) if tls_port is not None else free_port()
        self.password_file: Path | None = None
        self.pki: dict[str, Path] = {}
        try:
            if self.users:
                self.password_file = self.workdir / "passwd"
                write_password_file(self.password_file, self.users)
            if self.tls:
                self.pki = dict(pki) if pki else make_test_pki(self.workdir / "pki")
        except BaseException:
            self.close()
            raise
        if start:
            self._start_or_close()

    # -- TLS material for clients --------------------------------------------------------
    @property
    def ca_file(self) -> str | None:
        return str(self.pki["ca_file"]) if self.pki else None

    @property
    def client_cert_file(self) -> str | None:
        return str(self.pki["client_cert"]) if self.pki else None

    @property
    def client_key_file(self) -> str | None:
        return str(self.pki["client_key"]) if self.pki else None

    # -- config hooks ----------------------------------------------------------------------
    def _global_lines(self) -> list[str]:
        lines = super()._global_lines() + [
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1800",
        ]
        if self.verbose:
            lines.append("log_type all")
        return lines

    def _access_lines(self) -> list[str]:
        lines = [f"allow_anonymous {'false' if self.users else 'true'}"]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        return lines

    def _listener_lines(self) -> list[str]:
        lines = super()._listener_lines()
        if self.tls:
            lines += [
                f"listener {self.tls_port} {self.host}",
                f"cafile {self.pki['ca_file']}",
                f"certfile {self.pki['server_cert']}",
                f"keyfile {self.pki['server_key']}",
                "tls_version tlsv1.2",
            ]
            if self.require_client_cert:
                lines.append("require_certificate true")
        return lines

    def _ports(self) -> list[int]:
        return super()._ports() + ([self.tls_port] if self.tls_port else [])

    def _repick_ports(self) -> None:
        super()._repick_ports()
        if self.tls and not self._fixed_tls_port:
            self.tls_port = free_port()

    # -- outages ---------------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        """Stop mosquitto (SIGTERM; it saves its persistence file if enabled). Files stay."""
        self._terminate(timeout)

    def restart(self, timeout: float = 10.0) -> None:
        """Stop and start again on the same port(s)."""
        self._fixed_port = True
        self._fixed_tls_port = True
        self.stop()
        self.start(timeout)

    def kill(self) -> None:
        """SIGKILL mosquitto (no clean shutdown)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._terminate()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"TestBroker({self.host}:{self.port}, tls_port={self.tls_port}, {state})"
