package main

// Spare workers (CDAEMON_SPARES, issue 16): forked and started ahead of
// need, never serving until the master releases one into a dead
// worker's place. Checked from outside, through /proc and the master's
// log.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// waitSpare waits for a child of the master titled "prefork: spare",
// not one of not, that the master logged as waiting, and returns its pid.
func (d *daemon) waitSpare(not ...int) int {
	d.t.Helper()
	var spare int
	waitFor(d.t, "a waiting spare", func() bool {
		for _, p := range d.workers() {
			if strings.HasSuffix(proctest.Title(p), ": spare") && !contains(not, p) &&
				regexp.MustCompile(fmt.Sprintf(`spare \(pid %d\) waiting`, p)).MatchString(d.log()) {
				spare = p
				return true
			}
		}
		return false
	}, d.logTail)
	return spare
}

// onlyWorkerBut is the master's one child other than spare (with
// CDAEMON_WORKERS=1, the worker).
func (d *daemon) onlyWorkerBut(spare int) int {
	d.t.Helper()
	var others []int
	for _, p := range d.workers() {
		if p != spare {
			others = append(others, p)
		}
	}
	if len(others) != 1 {
		d.t.Fatalf("children other than the spare %d: %v, want one worker\n%s", spare, others, d.logTail())
	}
	return others[0]
}

// A spare has its Go runtime started (threads) and holds the listening
// socket, yet answers nothing; when a worker is killed it takes the
// worker's index at once (title, log), answers, and a new spare is forked
// behind it. A stop ends the spare too, with status 0.
func TestSpareReplacesKilledWorker(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=2", "CDAEMON_SPARES=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	d.waitWorkers(3)
	spare := d.waitSpare()
	if n := statusInt(t, spare, "Threads"); n < 2 {
		t.Errorf("spare %d has %d thread(s): its Go runtime did not start", spare, n)
	}
	if port, _ := listenSocket(t, spare); port != d.port {
		t.Errorf("spare %d listens on %d, the workers on %d", spare, port, d.port)
	}
	for i := 0; i < 30; i++ {
		if p := mustHello(t, d.port); p == spare {
			t.Fatalf("answer %d came from the spare %d", i, spare)
		}
	}

	var victim int
	for _, p := range d.workers() {
		if p != spare && d.index(p) == 0 {
			victim = p
		}
	}
	if err := unix.Kill(victim, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[0\] \(pid %d\) was killed by signal 9 \([^)]*\) after \d+ ms; spare \(pid %d\) released in its place, a new spare once it is ready`, victim, spare)))
	waitFor(t, "the spare titled worker[0]", func() bool {
		return proctest.Title(spare) == "prefork: worker[0]"
	}, d.logTail)
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", spare)); string(comm) != "prefork: worker[0]"[:15]+"\n" {
		t.Errorf("released spare's comm %q, want the worker's title (cut at 15 bytes)", comm)
	}
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[0\] \(pid %d\) ready`, spare)))
	next := d.waitSpare(spare)
	if next == victim {
		t.Fatalf("the new spare is the killed worker %d", victim)
	}
	// The new spare is forked only once the released one is ready: its
	// runtime start must not compete with the replacement's first accept.
	log := d.log()
	readyAt := strings.Index(log, fmt.Sprintf("worker[0] (pid %d) ready", spare))
	startedAt := strings.Index(log, fmt.Sprintf("spare started (pid %d)", next))
	if readyAt < 0 || startedAt < readyAt {
		t.Errorf("the new spare %d was started before the released spare %d was ready (log offsets %d, %d)", next, spare, startedAt, readyAt)
	}
	answered := map[int]bool{}
	waitFor(t, "an answer from the released spare", func() bool {
		answered[mustHello(t, d.port)] = true
		return answered[spare]
	}, d.logTail)
	if answered[next] {
		t.Errorf("the new spare %d answered", next)
	}
	// Its own log lines name it worker 0 (gowrap's Logger, from Worker()).
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`msg="Connection in %d" pid=%d worker=0`, spare, spare)))

	workers := d.workers()
	d.signal(unix.SIGQUIT)
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`spare \(pid %d\) exited with status 0`, next)))
	d.stopped(workers)
}

// A released spare that never gets ready does not leave the master
// without a spare for good: the refill waits for its Ready at most
// CDAEMON_TIMEOUT.
func TestSpareRefillWithoutReady(t *testing.T) {
	d := install(t, versioned(t, "v1", ""))
	hangIf := filepath.Join(d.dir, "hang")
	d.start("CDAEMON_WORKERS=1", "CDAEMON_SPARES=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0",
		"CDAEMON_TIMEOUT=3s", "VERSIONED_HANG_IF="+hangIf)
	d.waitWorkers(2)
	spare := d.waitSpare()
	victim := d.onlyWorkerBut(spare)
	// The spare checks the file only once released: it will hang.
	if err := os.WriteFile(hangIf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(victim, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`spare \(pid %d\) released in its place, a new spare once it is ready`, spare)))
	next := d.waitSpare(spare)
	if strings.Contains(d.log(), fmt.Sprintf("worker[0] (pid %d) ready", spare)) {
		t.Fatalf("the released spare %d got ready: the test proves nothing", spare)
	}
	if next == victim || next == spare {
		t.Fatalf("new spare %d: the victim %d or the released spare %d", next, victim, spare)
	}
	workers := d.workers()
	d.signal(unix.SIGTERM)
	d.stopped(workers)
}

// TTIN takes a spare at once for the new slot; TTOU retires a worker and
// leaves the spare alone.
func TestTTINReleasesSpare(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=1", "CDAEMON_SPARES=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	spare := d.waitSpare()
	d.signal(unix.SIGTTIN)
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[1\]: spare \(pid %d\) released`, spare)))
	waitFor(t, "the spare titled worker[1]", func() bool {
		return proctest.Title(spare) == "prefork: worker[1]"
	}, d.logTail)
	next := d.waitSpare(spare)
	d.waitWorkers(3)

	d.signal(unix.SIGTTOU)
	d.waitWorkers(2)
	if !proctest.Alive(next) || proctest.Title(next) != "prefork: spare" {
		t.Errorf("TTOU touched the spare %d (%s)", next, proctest.Title(next))
	}
	workers := d.workers()
	d.signal(unix.SIGTERM)
	d.stopped(workers)
}

// A spare that dies is forked again, with the workers' backoff: the first
// young death waits 100 ms.
func TestKilledSpareIsReplaced(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=1", "CDAEMON_SPARES=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	d.waitWorkers(3)
	spare := d.waitSpare()
	other := d.waitSpare(spare)
	if err := unix.Kill(spare, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m := d.waitLog(regexp.MustCompile(fmt.Sprintf(`spare \(pid %d\) was killed by signal 9 \([^)]*\) after (\d+) ms; a new one in (\d+) ms`, spare)))
	if age, _ := strconv.Atoi(m[1]); age < 1000 && m[2] != "100" {
		t.Errorf("a spare dead after %s ms is forked again in %s ms, want 100", m[1], m[2])
	}
	d.waitSpare(spare, other)
	d.waitWorkers(3)
	workers := d.workers()
	d.signal(unix.SIGTERM)
	d.stopped(workers)
}

// After a log rotation (rename, HUP), a spare released later writes to
// the new file, as the workers that got the HUP do.
func TestReleasedSpareWritesTheReopenedLog(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=1", "CDAEMON_SPARES=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	spare := d.waitSpare()
	worker := d.onlyWorkerBut(spare)
	if err := os.Rename(d.logFile, d.logFile+".1"); err != nil {
		t.Fatal(err)
	}
	d.signal(unix.SIGHUP)
	d.waitLog(regexp.MustCompile(`signal 1 \(Hangup\): log reopened, forwarded to 1 workers`))
	if !sameFile(spare, 1, d.logFile+".1") {
		t.Fatalf("the spare's stdout is not the old log before its release")
	}
	if err := unix.Kill(worker, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[0\] \(pid %d\) ready`, spare)))
	for _, fd := range []int{1, 2} {
		if !sameFile(spare, fd, d.logFile) {
			t.Errorf("released spare %d: fd %d is not the new log %s", spare, fd, d.logFile)
		}
	}
	workers := d.workers()
	d.signal(unix.SIGTERM)
	d.stopped(workers)
}

// A bad CDAEMON_SPARES fails the start with 64 and a message naming it,
// leaving nothing behind.
func TestBadSparesFailsCleanly(t *testing.T) {
	listen := "CDAEMON_LISTEN=tcp:127.0.0.1:0"
	for _, c := range []struct {
		name string
		env  []string
		want string
	}{
		{"too_many", []string{"CDAEMON_WORKERS=2", "CDAEMON_SPARES=65", listen}, `CDAEMON_SPARES="65": want a number of spare workers from 0 to 64`},
		{"not_a_number", []string{"CDAEMON_WORKERS=2", "CDAEMON_SPARES=one", listen}, `CDAEMON_SPARES="one"`},
		{"no_workers", []string{"CDAEMON_SPARES=1", listen}, "CDAEMON_SPARES=1: spares stand in for prefork workers: set CDAEMON_WORKERS too"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDaemon(t, example)
			code, out := d.launch(c.env, nil, nil)
			if code != 64 || !regexp.MustCompile(`(?m)^cdaemon: `+regexp.QuoteMeta(c.want)).MatchString(out) {
				t.Errorf("launcher exit %d, output %q; want 64 and %q", code, out, c.want)
			}
			if pids := ourProcesses(); len(pids) > 0 {
				t.Errorf("left running: %v", pids)
			}
			if _, err := os.Stat(d.pidFile); err == nil {
				t.Errorf("a pid file was left")
			}
		})
	}
}
