"""A throw-away local mosquitto broker on 127.0.0.1.

Used by the daemon's demo mode (``mqtt.host: null``) and by the tests. The broker's config,
log, password file and TLS material live in a private temporary directory that ``close()``
removes.

    with LocalBroker() as broker:             # plain listener, anonymous access
        ... broker.host, broker.port ...

    LocalBroker(users={"edge": "pw"}, tls=True)  # password required, extra TLS listener
                                                 # (broker.tls_port, broker.ca_file)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MOSQUITTO_CANDIDATES = (
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
)


class BrokerError(RuntimeError):
    """mosquitto could not be found, configured or started."""


def find_mosquitto() -> str:
    """Path of the mosquitto binary ($MOSQUITTO, PATH, then the usual sbin dirs)."""
    env = os.environ.get("MOSQUITTO")
    if env:
        return env
    found = shutil.which("mosquitto")
    if found:
        return found
    for cand in _MOSQUITTO_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    raise BrokerError("mosquitto not found (install the 'mosquitto' package or set $MOSQUITTO)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


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
    EC P-256 keys, valid 2 days: for tests and demo only. ``server_validity``
    (``("YYYYMMDDHHMMSSZ", "YYYYMMDDHHMMSSZ")``) gives the server cert explicit dates, e.g.
    an expired one (signed with ``openssl ca``: OpenSSL before 3.4 has no other way).
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


class LocalBroker:
    """A mosquitto process on 127.0.0.1 with a private config in a temp dir.

    ``port``: plain listener (free port when None). ``users``: username -> password; when
    given, anonymous access is off on every listener. ``tls``: also open a TLS listener on
    ``tls_port`` with a freshly made CA (``ca_file``) and server cert; with
    ``require_client_cert`` clients must present a cert signed by that CA
    (``client_cert_file``/``client_key_file``); ``pki``: use these (``make_test_pki``'s
    result, e.g. with an expired server cert) instead of fresh ones. ``persistence``: keep sessions and queued
    messages across ``restart()`` (saved on shutdown). Starts in the constructor unless
    ``start=False``.
    """

    host = "127.0.0.1"

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
        self.binary = mosquitto or find_mosquitto()
        self.users = dict(users or {})
        self.tls = bool(tls)
        self.require_client_cert = bool(require_client_cert)
        self.persistence = bool(persistence)
        self.verbose = bool(verbose)
        self._fixed_port = port is not None
        self._fixed_tls_port = tls_port is not None
        self.port = int(port) if port is not None else free_port()
        self.tls_port: int | None = None
        if self.tls:
            self.tls_port = int(tls_port) if tls_port is not None else free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="face-edge-mosquitto-"))
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.password_file: Path | None = None
        self.pki: dict[str, Path] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None
        try:
            if self.users:
                self.password_file = self.workdir / "passwd"
                write_password_file(self.password_file, self.users)
            if self.tls:
                self.pki = dict(pki) if pki else make_test_pki(self.workdir / "pki")
            if start:
                self.start()
        except BaseException:
            self.close()
            raise

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

    # -- config / process ----------------------------------------------------------------
    def _write_config(self) -> None:
        lines = ["per_listener_settings false"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # mosquitto started as root drops to user 'mosquitto', which cannot read our
            # private (0700) temp dir; stay root for this throw-away local broker.
            lines.append("user root")
        lines += [
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1800",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
            f"allow_anonymous {'false' if self.users else 'true'}",
        ]
        if self.verbose:
            lines.append("log_type all")
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        lines.append(f"listener {self.port} {self.host}")
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
        self.config_path.write_text("\n".join(lines) + "\n")

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until its listener(s) accept connections."""
        if self.is_running():
            return
        last_err = ""
        for attempt in range(3):
            self._write_config()
            self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._log_fh,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            ports = [self.port] + ([self.tls_port] if self.tls_port else [])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                if all(_port_open(self.host, p) for p in ports if p is not None):
                    log.info(
                        "local mosquitto on %s:%d (pid %d)", self.host, self.port, self._proc.pid
                    )
                    return
                time.sleep(0.03)
            last_err = self.log_tail()
            self._terminate()
            # the port may have been taken in the meantime: pick new ones unless pinned
            if "Address already in use" in last_err and attempt < 2:
                if not self._fixed_port:
                    self.port = free_port()
                if self.tls and not self._fixed_tls_port:
                    self.tls_port = free_port()
                continue
            break
        raise BrokerError(f"mosquitto did not start on {self.host}:{self.port}: {last_err[-800:]}")

    def _terminate(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

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
        """SIGKILL mosquitto (no clean shutdown; for tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._terminate()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Stop mosquitto and delete its temp dir."""
        self._terminate()
        if self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def client_settings(self, *, tls: bool | None = None) -> dict[str, Any]:
        """A partial ``mqtt`` config section pointing at this broker (no credentials)."""
        use_tls = self.tls if tls is None else tls
        return {
            "host": self.host,
            "port": self.tls_port if use_tls else self.port,
            "tls": {
                "enabled": bool(use_tls),
                "ca_file": self.ca_file if use_tls else None,
                "cert_file": None,
                "key_file": None,
                "verify": True,
            },
        }

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"LocalBroker({self.host}:{self.port}, tls_port={self.tls_port}, {state})"


def ensure_broker(mqtt_cfg: dict[str, Any]) -> tuple[dict[str, Any], LocalBroker | None]:
    """Demo mode helper: when ``mqtt_cfg['host']`` is None start a LocalBroker.

    Returns ``(cfg, broker)``: a copy of the section pointing at the local broker (plain TCP,
    no credentials) and the broker to ``close()`` at shutdown; or the section unchanged and
    None when a host is configured.
    """
    if mqtt_cfg.get("host"):
        return mqtt_cfg, None
    broker = LocalBroker()
    cfg = dict(mqtt_cfg)
    cfg.update(host=broker.host, port=broker.port, username=None, password_file=None)
    cfg["tls"] = {**dict(mqtt_cfg.get("tls") or {}), "enabled": False}
    log.warning(
        "mqtt.host is not set: started a local mosquitto on %s:%d for demo use",
        broker.host,
        broker.port,
    )
    return cfg, broker
