#!/usr/bin/env bash
# make demo: a real preforking daemon, started, used, rotated, stopped.
# Readable top to bottom; every command it runs is printed with "$ ".
set -euo pipefail
cd "$(dirname "$0")/.."

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

work=$(mktemp -d /tmp/cdaemon-demo.XXXXXX)
bin=$work/prefork
pidfile=$work/prefork.pid
logfile=$work/prefork.log
master=""
workers=""
# ours PID: the process still runs the binary this demo built (a pid
# could have been reused by now; /proc/PID/exe says what it runs).
ours() { [[ $(readlink "/proc/$1/exe" 2>/dev/null) == "$bin" ]]; }
cleanup() {
	# Leave nothing behind, even if the demo fails half-way: only the
	# processes this demo started, by the pids it recorded (never by a
	# name pattern, which would hit a concurrent make test). Workers die
	# with their master (PR_SET_PDEATHSIG); they are killed too, to be sure.
	for pid in $master $workers; do
		if ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	done
	rm -rf "$work"
}
trap cleanup EXIT

bold "Build examples/prefork: the slides' TCP preforking daemon, in Go"
run go build -o "$bin" ./examples/prefork

bold "Start it: 3 workers on a free port of 127.0.0.1; the launcher returns once all 3 are ready"
printf '$ CDAEMON=1 CDAEMON_WORKERS=3 CDAEMON_LISTEN=tcp:127.0.0.1:0 CDAEMON_PIDFILE=%s CDAEMON_LOG=%s %s\n' \
	"$pidfile" "$logfile" "$bin"
set +e
CDAEMON=1 CDAEMON_WORKERS=3 CDAEMON_LISTEN=tcp:127.0.0.1:0 \
	CDAEMON_PIDFILE=$pidfile CDAEMON_LOG=$logfile "$bin" 2>"$work/launcher.err"
status=$?
set -e
echo "launcher exit status: $status (0 = every worker said ready)"
[[ $status -eq 0 ]] || { cat "$work/launcher.err"; exit 1; }
master=$(cat "$pidfile")
workers=$(ps -o pid= --ppid "$master" | xargs)
port=$(sed -n 's/.*listening on tcp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$logfile" | head -1)
echo "master pid $master (from the pid file), listening on 127.0.0.1:$port"

bold "Master and workers: one session, no terminal; the master never started the Go runtime (1 thread)"
ps -o pid,ppid,pgid,sid,tty,nlwp,rss,args -p "$master" --ppid "$master"

bold "Six requests, answered by different worker processes"
for i in 1 2 3 4 5 6; do
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	read -r hello <&3
	exec 3<&-
	echo "request $i: $hello"
done

bold "Rotate the log: rename it, send HUP; the master and every worker reopen it"
run mv "$logfile" "$logfile.1"
run kill -HUP "$master"
# The master writes "log reopened" into the new file once it has reopened.
for _ in $(seq 100); do grep -q "log reopened" "$logfile" 2>/dev/null && break; sleep 0.05; done
exec 3<>"/dev/tcp/127.0.0.1/$port"; read -r hello <&3; exec 3<&-
echo "one more request: $hello"
for _ in $(seq 100); do grep -q "Connection in" "$logfile" 2>/dev/null && break; sleep 0.05; done
echo "old log: $(wc -l <"$logfile.1") lines; new log:"
sed 's/^/    /' "$logfile"

bold "Stop gracefully with QUIT: workers finish what is in flight, then exit"
run kill -QUIT "$master"
tail --pid="$master" -f /dev/null
echo "master $master has exited"
[[ -e $pidfile ]] && echo "pid file still there" || echo "pid file removed"
tail -4 "$logfile" | sed 's/^/    /'

bold "Nothing left running"
for pid in $master $workers; do
	if ours "$pid"; then
		ps -o pid,ppid,args -p "$pid"
		exit 1
	fi
done
echo "no master, no worker ($master $workers): all gone"
