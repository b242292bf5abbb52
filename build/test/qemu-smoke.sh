#!/bin/bash
# Smoke test of the arm64 and armv7 binaries under qemu-user: QoS 1
# publish/subscribe, a retained message, and a persistent session that gets
# the messages published while it was away across an edged restart
# (SIGTERM, start again). binfmt_misc may not be mounted (containers), so
# qemu-*-static is called explicitly. Needs mosquitto_pub/mosquitto_sub
# (build/test-deps.sh) and qemu-user-static (installed here if missing).
# Every wait is bounded; readiness is polled on the port.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v qemu-aarch64-static >/dev/null || ! command -v qemu-arm-static >/dev/null; then
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "qemu-smoke: installing qemu-user-static" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
fi
command -v mosquitto_sub >/dev/null || { echo "qemu-smoke: mosquitto_sub missing; run build/test-deps.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/edged-qemu.XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL [$arch]: $*" >&2
	[ -f "$work/$arch/edged.log" ] && { echo "--- edged log:" >&2; tail -n 30 "$work/$arch/edged.log" >&2; }
	exit 1
}
ok() { echo "ok [$arch]: $*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		port_open "$p" || { echo "$p"; return; }
	done
	return 1
}

# start_edged: run the binary under qemu in the background; wait (at most
# 60 s) until it accepts connections.
start_edged() {
	"$qemu" "$bin" -c "$dir/edged.yaml" >>"$dir/edged.log" 2>&1 &
	pid=$!
	local t0=$SECONDS
	until port_open "$port"; do
		kill -0 "$pid" 2>/dev/null || { pid=""; fail "edged exited during start"; }
		((SECONDS - t0 < 60)) || fail "edged not listening on $port after 60 s"
		sleep 0.1
	done
	ok "listening on 127.0.0.1:$port after $((SECONDS - t0)) s"
}

# stop_edged: SIGTERM, wait at most 30 s, require exit status 0.
stop_edged() {
	kill -TERM "$pid"
	local t0=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS - t0 < 30)) || fail "edged still running 30 s after SIGTERM"
		sleep 0.1
	done
	local rc=0
	wait "$pid" || rc=$?
	pid=""
	[ "$rc" -eq 0 ] || fail "edged exited with status $rc after SIGTERM"
	ok "stopped by SIGTERM, exit status 0"
}

sub() { timeout 60 mosquitto_sub -h 127.0.0.1 -p "$port" "$@"; }
pub() { timeout 30 mosquitto_pub -h 127.0.0.1 -p "$port" "$@"; }

smoke() {
	arch=$1 qemu=$2
	bin=dist/edged-linux-$arch
	dir=$work/$arch
	mkdir -p "$dir"
	[ -x "$bin" ] || fail "$bin missing; run make cross"
	port=$(free_port) || fail "no free port"
	cat >"$dir/edged.yaml" <<-YAML
	data_dir: $dir/data
	log: {level: info, format: text}
	listeners:
	  - name: local
	    address: 127.0.0.1:$port
	    allow_anonymous: true
	YAML
	local v
	v=$("$qemu" "$bin" version) || fail "$qemu $bin version"
	ok "$qemu $bin: $v"
	start_edged

	# QoS 1 publish/subscribe. The publisher repeats until the subscriber,
	# started first, has its message (no guessing how long SUBSCRIBE takes).
	sub -t smoke/live -q 1 -C 1 -W 30 -F '%q %t %p' >"$dir/live.out" &
	local spid=$! n=0
	while kill -0 "$spid" 2>/dev/null && ((n < 100)); do
		pub -t smoke/live -q 1 -m "live-$arch" || fail "mosquitto_pub QoS 1"
		n=$((n + 1))
		sleep 0.2
	done
	wait "$spid" || fail "subscriber got nothing on smoke/live"
	[ "$(cat "$dir/live.out")" = "1 smoke/live live-$arch" ] || fail "live: got '$(cat "$dir/live.out")'"
	ok "QoS 1 pub/sub: '$(cat "$dir/live.out")' (publish attempts: $n)"

	# Retained.
	pub -t smoke/retained -q 1 -r -m "kept-$arch" || fail "retained publish"
	got=$(sub -t smoke/retained -q 1 -C 1 -W 20 -F '%r %t %p') || fail "no retained message"
	[ "$got" = "1 smoke/retained kept-$arch" ] || fail "retained: got '$got'"
	ok "retained: '$got'"

	# Persistent session across a restart.
	sub -c -i "smoke-$arch" -q 1 -t 'smoke/persist/#' -E || fail "persistent subscribe"
	ok "persistent subscriber smoke-$arch subscribed and disconnected"
	for i in 1 2 3; do pub -q 1 -t "smoke/persist/$i" -m "m$i" || fail "publish m$i"; done
	ok "published m1 m2 m3 (QoS 1) while it was away"
	stop_edged
	start_edged
	got=$(sub -c -i "smoke-$arch" -q 1 -t 'smoke/persist/#' -C 3 -W 30 -F '%q %t %p' | tr '\n' ',') ||
		fail "persistent session: got only '$got'"
	want="1 smoke/persist/1 m1,1 smoke/persist/2 m2,1 smoke/persist/3 m3,"
	[ "$got" = "$want" ] || fail "persistent session: got '$got', want '$want'"
	ok "after restart the persistent session got m1 m2 m3 in order, QoS 1"
	got=$(sub -t smoke/retained -C 1 -W 20 -F '%r %t %p') || fail "retained lost in restart"
	[ "$got" = "1 smoke/retained kept-$arch" ] || fail "retained after restart: got '$got'"
	ok "retained message survived the restart"
	stop_edged
}

t0=$SECONDS
smoke arm64 qemu-aarch64-static
smoke armv7 qemu-arm-static
echo "qemu-smoke: PASS ($((SECONDS - t0)) s)"
