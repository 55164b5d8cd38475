#!/usr/bin/env bash
# make demo: a real daemon, started, used, stopped. Readable top to bottom.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

work=$(mktemp -d /tmp/cdaemon-demo.XXXXXX)
bin=$work/hello
pidfile=$work/hello.pid
logfile=$work/hello.log
cleanup() {
	if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

say "Build examples/hello (a TCP server that imports github.com/cdaemon/cdaemon/cdaemon)"
run go build -o "$bin" ./examples/hello

say "Start it as a daemon: the launcher returns only once the daemon is ready"
set +e
CDAEMON=1 CDAEMON_PIDFILE=$pidfile CDAEMON_LOG=$logfile HELLO_ADDR=127.0.0.1:0 "$bin"
status=$?
set -e
echo "launcher exit status: $status (0 = the daemon said ready)"
[[ $status -eq 0 ]] || exit 1
pid=$(cat "$pidfile")
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$logfile" | tail -1)
echo "pid file $pidfile holds $pid; listening on port $port"

say "Who is who: the daemon is not a session leader, has no terminal, and init (or a subreaper) is its parent"
run ps -o pid,ppid,pgid,sid,tty,stat,comm -p "$pid"

say "Its open files: stdin on /dev/null, stdout and stderr on the log, the locked pid file, the Go runtime's poller"
run ls -l "/proc/$pid/fd"
printf '$ grep -E "^(Umask|SigBlk|SigIgn)" /proc/%s/status\n' "$pid"
grep -E '^(Umask|SigBlk|SigIgn)' "/proc/$pid/status"
printf 'cwd -> %s\n' "$(readlink "/proc/$pid/cwd")"

say "Use it: three requests"
for i in 1 2 3; do
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	read -r reply <&3
	exec 3<&-
	echo "request $i: $reply"
done

say "A second start fails while the first lives (decided by the pid file's lock)"
set +e
CDAEMON=1 CDAEMON_PIDFILE=$pidfile CDAEMON_LOG=$logfile HELLO_ADDR=127.0.0.1:0 "$bin"
echo "launcher exit status: $? (75 = already running)"
set -e

say "A bad setting is refused before anything forks"
set +e
CDAEMON=1 CDAEMON_UMASK=999 "$bin"
echo "launcher exit status: $? (64 = bad CDAEMON* value)"
set -e

say "Stop it with TERM and wait until it is gone"
run kill -TERM "$pid"
tail --pid="$pid" -f /dev/null
echo "daemon $pid has exited"
[[ -e $pidfile ]] && echo "pid file still there" || echo "pid file removed"

say "The log file"
cat "$logfile"

say "Nothing left running"
left=$(pgrep -f "$bin" || true)
if [[ -n $left ]]; then echo "left running: $left"; exit 1; fi
echo "no process of $bin is left"
