#!/usr/bin/env bash
# The README's C quick start, as a reader would run it: make install into a
# fresh prefix, compile the README's program with pkg-config, run it as a
# daemon, stop it. Prints a "install: P passed, F failed" line.
set -uo pipefail
cd "$(dirname "$0")/../.."
prefix=$(mktemp -d /tmp/cdaemon-install.XXXXXX)
pass=0 fail=0
check() { if "$@"; then pass=$((pass + 1)); else echo "not ok: $*"; fail=$((fail + 1)); fi; }
finish() {
	[[ -s $prefix/app.pid ]] && kill -KILL "$(cat "$prefix/app.pid")" 2>/dev/null
	rm -rf "$prefix"
	echo "install: $pass passed, $fail failed"
	exit $((fail > 0))
}
trap finish EXIT

check make -s install PREFIX="$prefix" >/dev/null
check test -x "$prefix/bin/cdaemonize" -a -f "$prefix/include/cdaemon.h" -a -f "$prefix/lib/libcdaemon.a"
# The first ```c block after "## Quick start (C)".
awk '/^## Quick start \(C\)/ {s=1} s && /^```c$/ {c=1; next} c && /^```$/ {exit} c {print}' README.md >"$prefix/app.c"
check test -s "$prefix/app.c"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
check cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$prefix/app" "$prefix/app.c" \
	$(pkg-config --cflags --libs cdaemon) -Wl,-rpath,"$prefix/lib"
CDAEMON_PIDFILE=$prefix/app.pid "$prefix/app"
check test $? -eq 0
pid=$(cat "$prefix/app.pid" 2>/dev/null)
check test -n "$pid" -a -d "/proc/$pid"
# Not a session leader, no terminal: the double fork.
read -r sid tty < <(awk '{print $6, $7}' "/proc/$pid/stat" 2>/dev/null)
check test "$sid" != "$pid" -a "$tty" = 0
kill -TERM "$pid"
tail --pid="$pid" -f /dev/null
check test ! -e "$prefix/app.pid"
# A bad setting is refused before anything forks, naming the variable.
out=$(CDAEMON_PIDFILE=$prefix/app.pid CDAEMON_DIR=/nonexistent "$prefix/app" 2>&1)
check test $? -eq 64
check grep -q 'CDAEMON_DIR="/nonexistent"' <<<"$out"
check test ! -e "$prefix/app.pid"
