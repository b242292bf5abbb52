#!/bin/sh
# Installs, checks, removes and purges the amd64 edged .deb in a throwaway
# root, and runs `systemd-analyze verify` on the installed unit.
#
# The throwaway root is an overlayfs whose lower layer is this machine's /
# (read-only) and whose upper layer is a tmpfs, mounted in a private mount
# namespace (unshare -m), so nothing reaches the host and everything
# disappears when the test exits. `dpkg --root=ROOT` then works as on a real
# system: the package database is this machine's (so Depends: adduser is
# satisfied), and dpkg chroots into ROOT for the maintainer scripts, so
# adduser, getent and install really run and write ROOT/etc/passwd, not the
# host's. (A bare `dpkg --root` into an empty directory cannot run the
# scripts: there is no /bin/sh to chroot into; --force-script-chrootless
# would run them against the host.) Needs root (CAP_SYS_ADMIN for the mounts).
set -eu
cd "$(dirname "$0")/../.."

deb=$(ls dist/edged_*_amd64.deb 2>/dev/null | tail -n 1)
[ -n "$deb" ] || { echo "deb-install: no dist/edged_*_amd64.deb; run make package" >&2; exit 1; }

if [ "${EDGED_DEB_NS:-}" != 1 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "deb-install: needs root (dpkg, mount, chroot)" >&2; exit 1; }
	command -v systemd-analyze >/dev/null 2>&1 || {
		echo "deb-install: systemd-analyze missing (build/test-deps.sh installs systemd)" >&2; exit 1; }
	EDGED_DEB_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

work=$(mktemp -d /tmp/edged-deb.XXXXXX)
trap 'umount -R "$work/root" 2>/dev/null; umount "$work" 2>/dev/null; rm -rf "$work"' EXIT
mount -t tmpfs -o size=256m tmpfs "$work"
mkdir -p "$work/upper" "$work/work" "$work/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$work/root" ||
	fail "cannot mount an overlay root (needs CAP_SYS_ADMIN and overlayfs)"
R=$work/root
mount --bind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/run"   # no /run/systemd/system: systemd is "not running"
mount -t tmpfs tmpfs "$R/tmp"
echo "deb-install: $deb into overlay root $R"

cp "$deb" "$R/tmp/edged.deb"
getent passwd edged >/dev/null && fail "host already has a user edged; the test cannot tell"

# Install.
dpkg --root="$R" --force-unsafe-io -i "$R/tmp/edged.deb" || fail "dpkg -i"
st=$(dpkg --root="$R" -s edged) || fail "dpkg -s after install"
echo "$st" | grep -q '^Status: install ok installed' || fail "status: $(echo "$st" | grep ^Status)"
ok "installed: $(echo "$st" | grep -E '^(Version|Architecture):' | tr '\n' ' ')"
for f in /usr/bin/edged /usr/lib/systemd/system/edged.service /etc/edged/edged.yaml \
	/usr/share/doc/edged/examples/minimal.yaml; do
	[ -f "$R$f" ] || fail "$f missing"
done
[ -x "$R/usr/bin/edged" ] || fail "/usr/bin/edged not executable"
ok "files: binary, unit, /etc/edged/edged.yaml, examples"
echo "$st" | grep -A3 '^Conffiles:' | grep -q '^ /etc/edged/edged.yaml [0-9a-f]\{32\}' ||
	fail "/etc/edged/edged.yaml not a conffile in dpkg status"
ok "conffile: /etc/edged/edged.yaml is listed under Conffiles in $R/var/lib/dpkg/status"
ver=$(chroot "$R" /usr/bin/edged version) || fail "edged version"
ok "binary runs: $ver"
chroot "$R" /usr/bin/edged check-config -c /etc/edged/edged.yaml >/dev/null || fail "check-config of the packaged config"
ok "packaged config passes edged check-config"

# Maintainer scripts: user, groups, directory, permissions.
chroot "$R" getent passwd edged >/dev/null || fail "user edged not created"
chroot "$R" getent group edged >/dev/null || fail "group edged not created"
chroot "$R" id -nG edged | tr ' ' '\n' | grep -qx dialout || fail "edged not in group dialout"
getent passwd edged >/dev/null && fail "user edged leaked onto the host"
ok "user: $(chroot "$R" id edged)"
set -- $(chroot "$R" stat -c '%U:%G %a' /var/lib/edged) || fail "/var/lib/edged missing"
[ "$1 $2" = "edged:edged 750" ] || fail "/var/lib/edged is $1 $2, want edged:edged 750"
set -- $(chroot "$R" stat -c '%U:%G %a' /etc/edged/edged.yaml)
[ "$1 $2" = "root:edged 640" ] || fail "/etc/edged/edged.yaml is $1 $2, want root:edged 640"
ok "/var/lib/edged edged:edged 0750, /etc/edged/edged.yaml root:edged 0640"
[ -e "$R/etc/systemd/system/multi-user.target.wants/edged.service" ] &&
	fail "service enabled although systemd is not running"
ok "service not enabled (systemd not running in the root)"

# The unit, against the installed binary.
out=$(chroot "$R" systemd-analyze verify /usr/lib/systemd/system/edged.service 2>&1) ||
	fail "systemd-analyze verify: $out"
# verify exits 0 on some warnings; treat any output about edged.service as one.
if echo "$out" | grep -i 'edged.service' >/dev/null; then fail "systemd-analyze verify: $out"; fi
ok "systemd-analyze verify edged.service: clean"
score=$(chroot "$R" systemd-analyze security --offline=true /usr/lib/systemd/system/edged.service 2>/dev/null |
	sed -n 's/.*Overall exposure level for edged.service: *//p') || true
[ -n "$score" ] && ok "systemd-analyze security (offline): $score"

# An upgrade (reinstall) keeps a changed conffile.
echo "# local change" >> "$R/etc/edged/edged.yaml"
dpkg --root="$R" --force-unsafe-io --force-confold -i "$R/tmp/edged.deb" >/dev/null || fail "reinstall"
grep -q '^# local change' "$R/etc/edged/edged.yaml" || fail "reinstall replaced a changed conffile"
ok "reinstall keeps the locally changed conffile"

# Store something in the data directory, then remove and purge.
touch "$R/var/lib/edged/edged.db"
dpkg --root="$R" -r edged || fail "dpkg -r"
[ -e "$R/usr/bin/edged" ] && fail "/usr/bin/edged left after remove"
[ -e "$R/usr/lib/systemd/system/edged.service" ] && fail "unit left after remove"
[ -f "$R/etc/edged/edged.yaml" ] || fail "conffile removed by remove (only purge should)"
[ -f "$R/var/lib/edged/edged.db" ] || fail "data removed by remove (only purge should)"
dpkg --root="$R" -s edged | grep -q '^Status: deinstall ok config-files' || fail "status after remove"
ok "remove: files gone, conffile and data kept, status config-files"
dpkg --root="$R" -P edged || fail "dpkg -P"
for f in /etc/edged /var/lib/edged /usr/share/doc/edged; do
	[ -e "$R$f" ] && fail "$f left after purge"
done
dpkg --root="$R" -s edged >/dev/null 2>&1 && fail "edged still known to dpkg after purge"
left=$(cd "$work/upper" && find . -path ./tmp -prune -o -path ./var/lib/dpkg -prune -o -path ./var/log -prune \
	-o -path ./var/cache -prune -o -path ./etc -prune -o -name '*edged*' -print)
[ -z "$left" ] || fail "left after purge: $left"
ok "purge: /etc/edged, /var/lib/edged and every edged file gone (user edged kept, as Debian does)"
echo "deb-install: PASS"
