#!/usr/bin/env bash
# Install, upgrade or remove face-edge as a systemd service. Idempotent: run it again to
# upgrade. Keeps /etc/face-edge (config, password) and /var/lib/face-edge (spool) on
# uninstall unless --purge.
#
#   sudo systemd/install.sh                  install or upgrade from this checkout, enable, start
#   sudo systemd/install.sh --uninstall      stop, disable, remove program and unit
#   sudo systemd/install.sh --uninstall --purge   ... and config and spool
#   systemd/install.sh --root DIR --skip-venv     stage into DIR (tests, images); touches nothing else
set -euo pipefail

ROOT=/
ACTION=install
PURGE=0
SKIP_VENV=0
NO_START=0
SRC=$(cd "$(dirname "$0")/.." && pwd)
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --uninstall) ACTION=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    --skip-venv) SKIP_VENV=1; shift ;;
    --no-start) NO_START=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
ROOT=${ROOT%/}
PREFIX=$ROOT/opt/face-edge
ETC=$ROOT/etc/face-edge
STATE=$ROOT/var/lib/face-edge
UNIT_DIR=$ROOT/etc/systemd/system
UNIT=$UNIT_DIR/face-edge.service
live() { [ -z "$ROOT" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; }
say() { echo "face-edge install: $*"; }

ensure_user() {
  if [ -n "$ROOT" ] && [ ! -f "$ROOT/etc/passwd" ]; then
    say "no $ROOT/etc/passwd: not creating the face-edge user in the staged root"
    return
  fi
  local r=(); [ -n "$ROOT" ] && r=(--root "$ROOT")
  if ! grep -q '^face-edge:' "$ROOT/etc/passwd"; then
    groupadd "${r[@]}" --system face-edge 2>/dev/null || true
    useradd "${r[@]}" --system --gid face-edge --no-create-home --home-dir /var/lib/face-edge \
      --shell /usr/sbin/nologin --comment "face-edge camera service" face-edge
    say "created user face-edge"
  fi
  if grep -q '^video:' "$ROOT/etc/group"; then
    usermod "${r[@]}" -aG video face-edge
  fi
}

do_install() {
  ensure_user
  mkdir -p "$PREFIX" "$ETC" "$STATE" "$UNIT_DIR"
  # The program: a copy of this checkout (models, README, config examples) and its venv.
  rm -rf "$PREFIX/src.new"
  mkdir -p "$PREFIX/src.new"
  (cd "$SRC" && tar --exclude=.git --exclude=.venv --exclude=var --exclude='__pycache__' -cf - .) |
    tar -xf - -C "$PREFIX/src.new"
  rm -rf "$PREFIX/src" && mv "$PREFIX/src.new" "$PREFIX/src"
  cp "$SRC/README.md" "$PREFIX/README.md"
  if [ "$SKIP_VENV" = 0 ]; then
    [ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
    "$PREFIX/venv/bin/pip" install -q --upgrade pip
    extras=tflite
    [ -e /usr/lib/python3/dist-packages/libcamera ] && extras=tflite,picamera
    "$PREFIX/venv/bin/pip" install -q --upgrade "$PREFIX/src[$extras]"
  fi
  # Config only if absent: an upgrade never overwrites the technician's settings.
  if [ ! -f "$ETC/config.yaml" ]; then
    install -m 0640 "$SRC/config/example.yaml" "$ETC/config.yaml"
    say "wrote $ETC/config.yaml from the example: edit cameras and mqtt, then: systemctl restart face-edge"
  fi
  [ -f "$ETC/mqtt-password" ] || install -m 0640 /dev/null "$ETC/mqtt-password"
  if grep -q '^face-edge:' "$ROOT/etc/passwd" 2>/dev/null && [ -z "$ROOT" ]; then
    chgrp face-edge "$ETC" "$ETC/config.yaml" "$ETC/mqtt-password"
    chmod 0750 "$ETC"
    chown face-edge:face-edge "$STATE"
  fi
  install -m 0644 "$SRC/systemd/face-edge.service" "$UNIT"
  if live; then
    systemctl daemon-reload
    systemctl enable face-edge.service
    [ "$NO_START" = 1 ] || systemctl restart face-edge.service
    say "enabled and (re)started; logs: journalctl -u face-edge -f"
  else
    mkdir -p "$UNIT_DIR/multi-user.target.wants"
    ln -sfn ../face-edge.service "$UNIT_DIR/multi-user.target.wants/face-edge.service"
    say "staged into ${ROOT:-/} (enabled by symlink)"
  fi
}

do_uninstall() {
  if live; then
    systemctl disable --now face-edge.service 2>/dev/null || true
  fi
  rm -f "$UNIT_DIR/multi-user.target.wants/face-edge.service" "$UNIT"
  live && systemctl daemon-reload || true
  rm -rf "$PREFIX"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE" "$ROOT/var/cache/face-edge"
    if [ -z "$ROOT" ] || [ -f "$ROOT/etc/passwd" ]; then
      local r=(); [ -n "$ROOT" ] && r=(--root "$ROOT")
      userdel "${r[@]}" face-edge 2>/dev/null || true
    fi
    say "removed program, config, spool and user"
  else
    say "removed program and unit; kept $ETC and $STATE (use --purge to remove them)"
  fi
}

"do_$ACTION"
