#!/usr/bin/env bash
# The README's "first hour", run exactly as written (issue 13): its shell
# blocks, in order, as one script in one shell, and each program block
# saved where the line before it says ("Save as `PATH`:"). Then checks from
# outside that both daemons ran and left nothing behind.
#
# It runs in namespaces of its own (unshare: pid, mount, network), so the
# README's port 8080 and /tmp paths cannot meet another test's, and every
# process it starts dies with the namespace. Go modules come from the
# module cache (.ci/run fills it): the namespace has no network.
# Prints "first-hour: P passed, F failed" (or the reason it skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d /tmp/cdaemon-first-hour.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! unshare --pid --mount --net --fork --mount-proc true 2>/dev/null || [[ ! -d /mnt ]]; then
	echo "first-hour: skipped: unshare of pid, mount and network namespaces is not permitted here (or no /mnt)"
	exit 0
fi
for tool in ip curl pkg-config; do
	command -v "$tool" >/dev/null || { echo "first-hour: 0 passed, 1 failed ($tool is missing: .ci/run installs it)"; exit 1; }
done

# The section, from its heading to the next one.
awk '/^## The first hour/ {s=1; next} s && /^## / {exit} s {print}' README.md >"$work/section.md"
# Shell blocks into one script; "Save as `P`:" blocks into files under
# $work/files, copied to P inside the namespace (where /tmp is its own).
mkdir -p "$work/files"
awk -v files="$work/files" -v script="$work/readme.sh" -v list="$work/saves" '
	/^Save as `[^`]*`:$/ { match($0, /`[^`]*`/); save = substr($0, RSTART + 1, RLENGTH - 2); next }
	/^```sh$/ { inblock = "sh"; next }
	/^```(go|c)$/ { if (save == "") { print "a program block without a Save as line" > "/dev/stderr"; exit 1 }
		n++; out = files "/" n; print n " " save >> list; inblock = "file"; save = ""; next }
	/^```$/ { inblock = ""; next }
	inblock == "sh" { print >> script }
	inblock == "file" { print >> out }
' "$work/section.md" || { echo "first-hour: 0 passed, 1 failed (cannot read the README section)"; exit 1; }

cat >"$work/inside.sh" <<'INSIDE'
set -uo pipefail
work=$1 root=$2
ip link set lo up
# A /tmp of our own; the real one stays reachable at /mnt, for a checkout
# (and this script's files) that live under /tmp, as in CI's clean clone.
mount --bind /tmp /mnt
mount -t tmpfs tmpfs /tmp
case $work in /tmp/*) work=/mnt/${work#/tmp/} ;; esac
case $root in /tmp/*) root=/mnt/${root#/tmp/} ;; esac
mkdir -p /tmp/home
export HOME=/tmp/home
while read -r n path; do
	mkdir -p "$(dirname "$path")" && cp "$work/files/$n" "$path"
done <"$work/saves"
cd "$root"
echo "+ the README's steps"
( set -e -x; . "$work/readme.sh" ) >"$work/readme.out" 2>&1
echo "readme=$?" >"$work/status"
# The daemons were real and are gone: wait for every process of the
# namespace but this shell and its parent (pid 1) to end.
for p in /proc/[0-9]*; do
	p=${p#/proc/}
	[[ $p == 1 || $p == $$ || $p == $BASHPID ]] && continue
	timeout 20 tail --pid="$p" -f /dev/null 2>/dev/null
done
{
	echo "hello_pid_left=$([[ -e /tmp/hello.pid ]] && echo yes || echo no)"
	echo "app_pid_left=$([[ -e /tmp/app.pid ]] && echo yes || echo no)"
	echo "hello_log=$(grep -c 'msg=serving' /tmp/hello.log 2>/dev/null)"
	echo "installed=$([[ -f /tmp/home/.local/include/cdaemon.h && -f /tmp/home/.local/lib/libcdaemon.a && -x /tmp/home/.local/bin/cdaemonize ]] && echo yes || echo no)"
	# A bad setting is refused before anything forks, naming it.
	out=$(CDAEMON_PIDFILE=/tmp/bad.pid CDAEMON_DIR=/nonexistent /tmp/capp/app 2>&1)
	echo "bad_code=$?"
	echo "bad_named=$(grep -c 'CDAEMON_DIR="/nonexistent"' <<<"$out")"
	echo "bad_pid_left=$([[ -e /tmp/bad.pid ]] && echo yes || echo no)"
} >>"$work/status"
INSIDE

# The real caches, read-only use; no network inside.
export GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE) GOPATH=$(go env GOPATH)
export GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
timeout 600 unshare --pid --mount --net --fork --mount-proc bash "$work/inside.sh" "$work" "$root" 2>&1 | head -c 1048576

pass=0 fail=0
check() { # name, condition
	if eval "$2"; then pass=$((pass + 1)); else echo "not ok: $1"; fail=$((fail + 1)); fi
}
st() { sed -n "s/^$1=//p" "$work/status" 2>/dev/null; }
check "the README's steps ran to the end (set -e)" '[[ $(st readme) == 0 ]]'
out=$(head -c 65536 "$work/readme.out" 2>/dev/null)
check "hello start exited 0, status says running" 'grep -q "^hello: running (pid [0-9]*)$" <<<"$out"'
check "the gowrap daemon answered over HTTP" 'grep -q "^hello from pid [0-9]*$" <<<"$out"'
check "hello stop stopped it" 'grep -q "^hello: stopped (pid [0-9]*, terminated)$" <<<"$out"'
check "its log has the serving record" '[[ $(st hello_log) -ge 1 ]]'
check "no hello pid file left" '[[ $(st hello_pid_left) == no ]]'
check "make install put the header, library and tool under PREFIX" '[[ $(st installed) == yes ]]'
check "the C daemon started and printed its pid" 'grep -q "^[0-9][0-9]*$" <<<"$out"'
check "no C pid file left after kill" '[[ $(st app_pid_left) == no ]]'
check "a bad CDAEMON_DIR exits 64" '[[ $(st bad_code) == 64 ]]'
check "its message names the variable and value" '[[ $(st bad_named) -ge 1 ]]'
check "and leaves no pid file" '[[ $(st bad_pid_left) == no ]]'
if ((fail > 0)); then
	echo "--- the README's steps, as they ran:"
	printf '%s\n' "$out"
fi
echo "first-hour: $pass passed, $fail failed"
exit $((fail > 0))
