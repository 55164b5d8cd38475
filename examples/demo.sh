#!/usr/bin/env bash
# make demo: a real preforking daemon, started, used, rotated, stopped.
# Readable top to bottom; every command it runs is printed with "$ ".
# Every claim it prints is checked against what it shows: a check that
# fails stops the demo with exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bold headings on a terminal only: redirected to a file or a pipe, the
# output holds no escape codes.
if [[ -t 1 ]]; then
	bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	bold() { printf '\n== %s\n' "$*"; }
fi
run() { printf '$ %s\n' "$*"; "$@"; }
fail() { echo "demo: $*" >&2; exit 1; }
indent() { sed 's/^/    /'; }

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

# wait_for WHAT FILE PATTERN: wait (at most 10 s) until FILE holds a line
# matching PATTERN. The daemon writes its log on its own time.
wait_for() {
	local i
	for i in $(seq 200); do
		grep -q -- "$3" "$2" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "no $1 in $2 after 10 s"
}

# hello: open a connection to the daemon on fd 3 and read its first line.
hello() {
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	read -r -t 10 line <&3 || fail "no answer from 127.0.0.1:$port"
}

bold "Build examples/prefork: the \"TCP preforking daemon\" of the talk Daemons in Ruby, in Go"
run go build -o "$bin" ./examples/prefork

bold "Start it: 3 workers on a free port of 127.0.0.1, each holding a connection 1 s before its Goodbye"
printf '$ CDAEMON=1 CDAEMON_WORKERS=3 CDAEMON_LISTEN=tcp:127.0.0.1:0 CDAEMON_PIDFILE=%s CDAEMON_LOG=%s PREFORK_DELAY=1s %s\n' \
	"$pidfile" "$logfile" "$bin"
set +e
CDAEMON=1 CDAEMON_WORKERS=3 CDAEMON_LISTEN=tcp:127.0.0.1:0 \
	CDAEMON_PIDFILE=$pidfile CDAEMON_LOG=$logfile PREFORK_DELAY=1s \
	"$bin" 2>"$work/launcher.err"
status=$?
set -e
echo "launcher exit status: $status (0 = every worker said ready)"
[[ $status -eq 0 ]] || { cat "$work/launcher.err"; exit 1; }
master=$(cat "$pidfile")
workers=$(ps -o pid= --ppid "$master" | xargs)
port=$(sed -n 's/.*listening on tcp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$logfile" | head -1)
[[ -n $port ]] || fail "no listening line in the log"
echo "master pid $master (from the pid file), listening on 127.0.0.1:$port"

bold "Master and workers, as ps shows them"
ps -o pid,ppid,pgid,sid,tty,nlwp,rss,args -p "$master" --ppid "$master"
sids=$(ps -o sid= -p "$master" --ppid "$master" | sort -u | xargs)
ttys=$(ps -o tty= -p "$master" --ppid "$master" | sort -u | xargs)
threads=$(ps -o nlwp= -p "$master" | xargs)
nworkers=$(wc -w <<<"$workers")
[[ $nworkers -eq 3 ]] || fail "want 3 workers, ps shows $nworkers: $workers"
[[ $sids != *" "* ]] || fail "more than one session: $sids"
[[ $ttys == "?" ]] || fail "a controlling terminal: $ttys"
echo "3 workers; all in one session ($sids), with no controlling terminal (TT ?)"
if [[ $threads -eq 1 ]]; then
	echo "the master runs 1 thread: it is cdaemon's C loop and never started the Go runtime"
else
	echo "the master runs $threads threads"
fi

bold "Six requests, one connection each"
answers=""
for i in 1 2 3 4 5 6; do
	hello
	exec 3<&-
	echo "request $i: $line"
	answers+="${line##* } "
done
distinct=$(tr ' ' '\n' <<<"$answers" | sed '/^$/d' | sort | uniq -c | sort -rn |
	awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')
ndistinct=$(tr ' ' '\n' <<<"$answers" | sed '/^$/d' | sort -u | wc -l)
echo "6 answers from $ndistinct distinct worker pids: $distinct"
idle=""
for w in $workers; do [[ " $answers" == *" $w "* ]] || idle+=" $w"; done
if [[ -n $idle ]]; then
	echo "no answer from:$idle (the workers share one listening socket; whichever accepts first answers)"
else
	echo "every worker answered at least once"
fi

bold "Rotate the log: rename it, send HUP to the master"
run mv "$logfile" "$logfile.1"
run kill -HUP "$master"
# The master writes "log reopened" into the new file once it has reopened
# it and forwarded HUP to the workers; a worker's record lands there too
# once that worker has reopened its own.
wait_for "\"log reopened\" line" "$logfile" "log reopened"
hello
exec 3<&-
echo "one more request: $line"
wait_for "connection record" "$logfile" "Connection in ${line##* }"
echo "the old log, $(basename "$logfile").1, ends with:"
tail -n 3 "$logfile.1" | indent
echo "the new log, $(basename "$logfile"):"
indent <"$logfile"

bold "Stop gracefully with QUIT while a connection is in flight"
hello
echo "a connection is open: $line"
run kill -QUIT "$master"
read -r -t 10 line <&3 || fail "the connection in flight got no Goodbye after QUIT"
exec 3<&-
echo "the same connection, after QUIT: $line"
timeout 30 tail --pid="$master" -f /dev/null || fail "master $master still runs 30 s after QUIT"
echo "master $master has exited"
[[ ! -e $pidfile ]] || fail "pid file $pidfile still there"
echo "pid file removed"
echo "the log ends with:"
tail -n 5 "$logfile" | indent

bold "Nothing left running"
for pid in $master $workers; do
	if ours "$pid"; then
		ps -o pid,ppid,args -p "$pid"
		fail "process $pid still runs"
	fi
done
echo "no master, no worker ($master $workers): all gone"
