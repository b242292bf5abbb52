#!/bin/sh
# Keeps the fuzz corpus: copies the inputs `go test -fuzz` found interesting
# (stored in $(go env GOCACHE)/fuzz/<import path>/<FuzzName>/) into
# <package dir>/testdata/fuzz/<FuzzName>/, where plain `go test` runs them as
# seed and regression inputs. Every Fuzz target of the module is handled.
#
#   build/fuzz-corpus.sh                 copy what the cache holds
#   FUZZTIME=30s build/fuzz-corpus.sh    fuzz each target that long first
#   build/fuzz-corpus.sh ./persist       only the targets of these packages
#
# MAX (default 300) bounds the files per target: files already in testdata
# are always kept (crashers, hand-made seeds), and new ones are added
# smallest first up to MAX. After copying, each package's targets are run
# as plain tests; if that fails (a cached input of an older signature), the
# files added are removed again and the script exits 1 at the end. It also
# exits 1 if a package's targets failed before copying (a kept crasher).
set -eu

cd "$(dirname "$0")/.."
GO=${GO:-go}
MAX=${MAX:-300}
FUZZTIME=${FUZZTIME:-}
cache="$($GO env GOCACHE)/fuzz"
[ $# -gt 0 ] || set -- ./...
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$GO list -f '{{.Dir}} {{.ImportPath}}' "$@" >"$tmp/pkgs"
while read -r dir pkg; do
	targets=$(cat "$dir"/*_test.go 2>/dev/null |
		sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' | sort -u)
	[ -n "$targets" ] || continue
	: >"$tmp/added"
	re=$(echo $targets | tr ' ' '|')
	before=ok # a kept crasher already fails: then the check below is moot
	$GO test -count=1 -run "^($re)\$" "$dir" >/dev/null 2>&1 || before=failing
	for t in $targets; do
		if [ -n "$FUZZTIME" ]; then
			echo "fuzzing $pkg $t for $FUZZTIME"
			$GO test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$dir" >"$tmp/log" 2>&1 || {
				cat "$tmp/log" >&2
				echo "$pkg $t: fuzzing failed; the crasher is in $dir/testdata/fuzz/$t" >&2
				touch "$tmp/failed"
			}
		fi
		src="$cache/$pkg/$t"
		dst="$dir/testdata/fuzz/$t"
		[ -d "$src" ] || { echo "$pkg $t: nothing in the cache"; continue; }
		mkdir -p "$dst"
		have=$(find "$dst" -type f | wc -l)
		: >"$tmp/new"
		for f in "$src"/*; do
			[ -f "$f" ] && [ ! -e "$dst/${f##*/}" ] || continue
			head -n 1 "$f" | grep -qx 'go test fuzz v1' || continue
			printf '%s %s\n' "$(wc -c <"$f")" "$f" >>"$tmp/new"
		done
		n=0
		sort -n "$tmp/new" | cut -d' ' -f2- >"$tmp/list"
		while read -r f; do
			[ $((have + n)) -lt "$MAX" ] || break
			cp "$f" "$dst/"
			echo "$dst/${f##*/}" >>"$tmp/added"
			n=$((n + 1))
		done <"$tmp/list"
		echo "$pkg $t: $((have + n)) files ($n new)"
		rmdir "$dst" 2>/dev/null || true
	done
	if [ "$before" = failing ]; then
		echo "$pkg: its fuzz targets fail already (a crasher in testdata?); corpus not checked" >&2
		touch "$tmp/failed"
	elif [ -s "$tmp/added" ]; then
		if ! $GO test -count=1 -run "^($re)\$" "$dir" >"$tmp/log" 2>&1; then
			cat "$tmp/log" >&2
			echo "$pkg: the new corpus files fail 'go test'; removing them" >&2
			while read -r f; do rm -f "$f"; done <"$tmp/added"
			touch "$tmp/failed"
		fi
	fi
done <"$tmp/pkgs"
[ ! -e "$tmp/failed" ]
