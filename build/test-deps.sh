#!/bin/sh
# Installs what edged's tests need on a Debian machine, if it is missing:
# mosquitto (a real upstream broker for the bridge tests), mosquitto-clients
# (interoperability tests), gcc (the C reference sensor client) and
# coreutils' stdbuf, chromium (the status page's browser tests, driven
# headless by chromedp); for the packaging tests (build/test/), qemu-user-static
# (the arm binaries under qemu-user) and systemd (systemd-analyze verify of
# the unit). Nothing is done when everything is there.
set -eu

missing=""
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$missing mosquitto"
command -v mosquitto_sub >/dev/null 2>&1 || missing="$missing mosquitto-clients"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"
command -v stdbuf >/dev/null 2>&1 || missing="$missing coreutils"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
{ command -v qemu-aarch64-static && command -v qemu-arm-static; } >/dev/null 2>&1 || missing="$missing qemu-user-static"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: please install:$missing" >&2
	exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "test-deps: installing$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The Debian package starts a mosquitto service on port 1883; the tests
# start their own on free ports, and edged's default config wants 1883.
if command -v systemctl >/dev/null 2>&1; then
	$SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
