"""systemd/install.sh staged into a temporary root (idempotent install, config kept, uninstall
and purge), and the unit file checked by systemd-analyze (verify and security exposure)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "systemd" / "install.sh"
UNIT = REPO / "systemd" / "face-edge.service"


def run_install(root: Path, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--skip-venv", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (r / "etc" / "group").write_text("root:x:0:\nvideo:x:44:\n")
    (r / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (r / "etc" / "gshadow").write_text("root:*::\nvideo:!::\n")
    return r


@pytest.mark.requires("useradd")
def test_install_is_idempotent_and_uninstall_keeps_config(root):
    run_install(root)
    unit = root / "etc/systemd/system/face-edge.service"
    assert unit.read_text() == UNIT.read_text()
    assert (root / "etc/systemd/system/multi-user.target.wants/face-edge.service").is_symlink()
    cfg = root / "etc/face-edge/config.yaml"
    assert cfg.read_text() == (REPO / "config/example.yaml").read_text()
    assert (root / "opt/face-edge/src/models/quantized/manifest.json").is_file()
    assert re.search(r"^face-edge:", (root / "etc/passwd").read_text(), re.M)
    assert re.search(r"^video:.*face-edge", (root / "etc/group").read_text(), re.M)

    cfg.write_text(cfg.read_text() + "\n# tuned by the technician\n")
    run_install(root)  # upgrade: same result, config untouched, user not duplicated
    assert cfg.read_text().endswith("# tuned by the technician\n")
    assert len(re.findall(r"^face-edge:", (root / "etc/passwd").read_text(), re.M)) == 1

    (root / "var/lib/face-edge/spool.sqlite").write_bytes(b"spool")
    run_install(root, "--uninstall")
    assert not unit.exists() and not (root / "opt/face-edge").exists()
    assert cfg.exists() and (root / "var/lib/face-edge/spool.sqlite").exists()

    run_install(root, "--uninstall", "--purge")
    assert not (root / "etc/face-edge").exists() and not (root / "var/lib/face-edge").exists()
    assert not re.search(r"^face-edge:", (root / "etc/passwd").read_text(), re.M)


def _unit_with_real_binary(tmp_path: Path) -> Path:
    """systemd-analyze verify needs ExecStart's binary to exist: point it at this venv's."""
    exe = Path(sys.executable).parent / "face-edge"
    text = UNIT.read_text().replace("/opt/face-edge/venv/bin/face-edge", str(exe))
    out = tmp_path / "face-edge.service"
    out.write_text(text)
    return out


@pytest.mark.requires("systemd-analyze", "console-script")
def test_unit_verifies_and_exposure_is_low(tmp_path):
    unit = _unit_with_real_binary(tmp_path)
    res = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert "face-edge.service" not in res.stderr, res.stderr  # no warnings about our unit
    sec = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(
        r"Overall exposure level for face-edge\.service: ([0-9.]+)", sec.stdout + sec.stderr
    )
    assert m, sec.stdout[-2000:]
    assert float(m.group(1)) <= 2.5
    text = UNIT.read_text()
    for key in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecReload=",
        "StateDirectory=",
        "ConfigurationDirectory=",
        "LoadCredential=mqtt-password",
        "ProtectSystem=strict",
        "DevicePolicy=closed",
        "NoNewPrivileges=yes",
        "SupplementaryGroups=video",
    ):
        assert key in text, key
