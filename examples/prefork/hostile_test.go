package main

// Hostile conditions for the prefork master: killed with SIGKILL, a
// start that never becomes ready (timed out, or interrupted by the
// operator), inherited fds to keep, a unix socket to create and remove.
// Each one checks from outside that nothing of the daemon is left behind:
// no orphaned worker holding the port, no stale socket file.
//
// Deaths are waited for with pidfds. A worker whose master died must
// die too (the workers get PR_SET_PDEATHSIG SIGKILL): once the master's
// death shows, every worker is already gone or has a SIGKILL pending,
// which nothing can block or catch. A worker found alive without one will
// never die, so the tests say so at once instead of waiting out the
// deadline.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// ---------------------------------------------------------------------------
// Helpers

// capped is s cut to its last 4000 bytes, for a failure message.
func capped(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// pidfds holds a pidfd for each process the test watches, opened while
// the process is known to be alive (or a zombie), so that a reused pid
// can never be mistaken for it.
type pidfds struct {
	t   *testing.T
	fds map[int]int // pid -> pidfd; -1: it was gone when we looked
}

func newPidfds(t *testing.T) *pidfds {
	p := &pidfds{t: t, fds: map[int]int{}}
	t.Cleanup(func() {
		for _, fd := range p.fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	})
	return p
}

// add opens a pidfd for each pid not watched yet.
func (p *pidfds) add(pids ...int) {
	for _, pid := range pids {
		if _, ok := p.fds[pid]; ok {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			p.fds[pid] = fd
		case errors.Is(err, unix.ESRCH):
			p.fds[pid] = -1
		default:
			p.t.Fatalf("pidfd_open(%d): %v", pid, err)
		}
	}
}

// wait waits until every one of pids (added first) has exited, all
// against one deadline; it returns those still running then. It reaps
// nothing.
func (p *pidfds) wait(pids []int, timeout time.Duration) []int {
	p.add(pids...)
	end := time.Now().Add(timeout)
	left := slices.Clone(pids)
	for {
		var pfd []unix.PollFd
		var who []int
		for _, pid := range left {
			if fd := p.fds[pid]; fd >= 0 {
				pfd = append(pfd, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
				who = append(who, pid)
			}
		}
		if len(pfd) == 0 {
			return nil
		}
		// A zero timeout polls once more: the deadline may have passed
		// while the last pidfd became readable.
		ms := max(int(time.Until(end)/time.Millisecond)+1, 0)
		n, err := unix.Poll(pfd, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.t.Fatalf("poll on pidfds: %v", err)
		}
		left = left[:0]
		for i := range pfd {
			if pfd[i].Revents == 0 {
				left = append(left, who[i])
			} else {
				unix.Close(int(pfd[i].Fd))
				p.fds[who[i]] = -1
			}
		}
		if len(left) == 0 {
			return nil
		}
		if n == 0 && time.Now().After(end) {
			return left
		}
	}
}

// reap reaps pid if it is a zombie child of the test process (the
// subreaper adopts a daemon whose parent died) and returns its wait
// status; false if it is not ours to reap.
func reap(pid int) (unix.WaitStatus, bool) {
	var ws unix.WaitStatus
	for {
		r, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		return ws, err == nil && r == pid
	}
}

// sigkillBit is SIGKILL in a /proc/<pid>/status signal mask (bit N-1 for
// signal N).
const sigkillBit = 1 << (unix.SIGKILL - 1)

// dying reports whether pid is gone or on its way out: exited (reaped,
// or a zombie), or with SIGKILL pending for the process (ShdPnd) or its
// main thread (SigPnd). The kernel keeps a process-wide SIGKILL in ShdPnd
// until the process is reaped. Otherwise it says what the process is.
func dying(pid int) (bool, string) {
	st, err := proctest.ReadStatus(pid)
	if err != nil {
		return true, "gone"
	}
	state := st["State"]
	if strings.HasPrefix(state, "Z") || strings.HasPrefix(state, "X") {
		return true, state
	}
	for _, f := range []string{"ShdPnd", "SigPnd"} {
		if m, err := st.Mask(f); err == nil && m&sigkillBit != 0 {
			return true, f + " has SIGKILL"
		}
	}
	return false, fmt.Sprintf("%q, state %s, ppid %s, ShdPnd %s, SigPnd %s",
		proctest.Title(pid), state, st["PPid"], st["ShdPnd"], st["SigPnd"])
}

// orphans fails the test at once if one of workers, whose master is
// dead, is alive with no SIGKILL pending: nothing will end it.
func orphans(t *testing.T, master int, workers []int) {
	t.Helper()
	var msgs []string
	for _, w := range workers {
		if ok, what := dying(w); !ok {
			msgs = append(msgs, fmt.Sprintf("worker %d: %s", w, what))
		}
	}
	if len(msgs) > 0 {
		t.Fatalf("the master %d is dead, and %d of the workers %v live on with no SIGKILL pending "+
			"(no PR_SET_PDEATHSIG SIGKILL, nor anything else, ends them):\n%s",
			master, len(msgs), workers, strings.Join(msgs, "\n"))
	}
}

// gone waits (pidfds, one deadline) until every one of pids has exited,
// reaps those that are the test's children and returns their wait
// statuses; it fails the test if one is still running at the deadline.
func gone(t *testing.T, fds *pidfds, what string, pids []int) map[int]unix.WaitStatus {
	t.Helper()
	if running := fds.wait(pids, deadline); len(running) > 0 {
		var msgs []string
		for _, p := range running {
			_, why := dying(p)
			msgs = append(msgs, fmt.Sprintf("pid %d: %s", p, why))
		}
		t.Fatalf("%s: still running %v after %v:\n%s", what, running, deadline, strings.Join(msgs, "\n"))
	}
	statuses := map[int]unix.WaitStatus{}
	for _, p := range pids {
		if ws, ok := reap(p); ok {
			statuses[p] = ws
		}
	}
	return statuses
}

// stuckReport is a line of a PFTEST_NEVER_READY worker (see
// testdata/worker): "stuck <pid> <ppid>".
type stuckReport struct {
	pid, ppid int
	bad       string // a line that does not parse
}

// maxReports caps what the test reads from the FIFO of reports.
const maxReports = 64 << 10

// readReports reads the FIFO's lines, at most maxReports bytes, until the
// test ends (its cleanup closes the FIFO).
func readReports(t *testing.T, fifo *os.File) <-chan stuckReport {
	ch := make(chan stuckReport)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	if err := fifo.SetReadDeadline(time.Now().Add(4 * deadline)); err != nil {
		t.Fatalf("FIFO read deadline: %v", err)
	}
	go func() {
		defer close(ch)
		r := bufio.NewReader(io.LimitReader(fifo, maxReports))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			rep := stuckReport{bad: strings.TrimSpace(line)}
			if f := strings.Fields(line); len(f) == 3 && f[0] == "stuck" {
				pid, err1 := strconv.Atoi(f[1])
				ppid, err2 := strconv.Atoi(f[2])
				if err1 == nil && err2 == nil {
					rep = stuckReport{pid: pid, ppid: ppid}
				}
			}
			select {
			case ch <- rep:
			case <-done:
				return
			}
		}
	}()
	return ch
}

// stuckStart is a start whose n workers never become ready.
type stuckStart struct {
	d       *daemon
	l       *launcher
	fds     *pidfds
	master  int   // the workers' parent, as they reported it
	workers []int // those that reported stuck
}

// startStuck launches n PFTEST_NEVER_READY workers with env and collects
// their reports: all n, unless the launcher exits first (its own timeout
// on a slow machine) and mayEnd allows it.
func startStuck(t *testing.T, n int, mayEnd bool, env ...string) *stuckStart {
	t.Helper()
	d := newDaemon(t, variant)
	fifo := proctest.OpenFIFO(t, filepath.Join(d.dir, "report"))
	reports := readReports(t, fifo)
	env = append([]string{fmt.Sprintf("CDAEMON_WORKERS=%d", n), "CDAEMON_LISTEN=tcp:127.0.0.1:0",
		"PFTEST_NEVER_READY=1", "PFTEST_REPORT=" + fifo.Name()}, env...)
	s := &stuckStart{d: d, l: d.launchWith(launchOpts{env: env}), fds: newPidfds(t)}
	launcherPID := s.l.cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		proctest.WaitExit(launcherPID, 3*deadline)
		close(exited)
	}()
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	for len(s.workers) < n {
		select {
		case rep, ok := <-reports:
			if !ok {
				t.Fatalf("the FIFO of reports ended after %d of %d workers", len(s.workers), n)
			}
			if rep.bad != "" {
				t.Fatalf("a worker reported %q, want \"stuck <pid> <ppid>\"", rep.bad)
			}
			if rep.ppid == testPID || rep.ppid == launcherPID || rep.ppid == 1 {
				t.Fatalf("worker %d reported parent %d: orphaned before it was stuck\n%s", rep.pid, rep.ppid, d.logTail())
			}
			s.fds.add(rep.pid, rep.ppid)
			if s.master == 0 {
				s.master = rep.ppid
			} else if rep.ppid != s.master {
				t.Errorf("worker %d reported parent %d, others %d", rep.pid, rep.ppid, s.master)
			}
			s.workers = append(s.workers, rep.pid)
		case <-exited:
			if !mayEnd {
				code, out := s.l.wait()
				t.Fatalf("the launcher exited %d while %d of %d workers had reported stuck:\n%s\n%s",
					code, len(s.workers), n, capped(out), d.logTail())
			}
			t.Logf("the launcher exited after %d of %d workers had reported stuck", len(s.workers), n)
			return s
		case <-timeout.C:
			t.Fatalf("timed out after %v: %d of %d workers reported stuck\n%s", deadline, len(s.workers), n, d.logTail())
		}
	}
	t.Logf("master %d, workers %v stuck before Ready", s.master, s.workers)
	return s
}

// allGone checks, once the launcher of a failed start has exited, that
// the master and every worker are gone, and with them everything of the
// test binaries and the pid file.
func (s *stuckStart) allGone(t *testing.T) {
	t.Helper()
	if s.master != 0 {
		gone(t, s.fds, fmt.Sprintf("the master %d after the launcher exited", s.master), []int{s.master})
		orphans(t, s.master, s.workers)
		statuses := gone(t, s.fds, "the workers", s.workers)
		t.Logf("master %d and workers %v gone; reaped by the test: %v", s.master, s.workers, statuses)
	}
	// Workers that had not reported (a slow start timed out first), or
	// processes the test never heard of: they must end too.
	if left := ourProcesses(); len(left) > 0 {
		t.Logf("processes of the test binaries not reported stuck, still there after the launcher exited: %v", left)
		gone(t, s.fds, "the processes of the test binaries left", left)
	}
	if _, err := os.Stat(s.d.pidFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after the failed start: %v, want it removed", err)
	}
}

// ---------------------------------------------------------------------------
// A. kill -9 of the master

// kill -9 of a ready master: every worker dies with it (PR_SET_PDEATHSIG
// SIGKILL), and a new start on the same port succeeds: no orphaned
// worker holds the socket (the start used to fail with 69).
func TestHostileMasterKilled(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=3", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	workers := d.waitWorkers(3)
	port, master := d.port, d.master
	mustHello(t, port)
	fds := newPidfds(t)
	fds.add(workers...)

	if err := unix.Kill(master, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ws := reapChild(t, master); !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("master: wait status %v (%#x), want killed by SIGKILL", ws, uint32(ws))
	}
	orphans(t, master, workers)
	statuses := gone(t, fds, "the workers of the killed master", workers)
	for _, w := range workers {
		ws, ok := statuses[w]
		if !ok {
			t.Errorf("worker %d: not reparented to the test (the subreaper) to be reaped", w)
			continue
		}
		if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
			t.Errorf("worker %d: wait status %v (%#x), want killed by SIGKILL", w, ws, uint32(ws))
		}
	}
	if left := ourProcesses(); len(left) > 0 {
		t.Fatalf("left running after the master's death: %v", left)
	}

	item := fmt.Sprintf("tcp:127.0.0.1:%d", port)
	code, out := d.launch([]string{"CDAEMON_WORKERS=3", "CDAEMON_LISTEN=" + item}, nil, nil)
	if code != 0 {
		t.Fatalf("a new start on %s after the master's kill exited %d, want 0:\n%s\n%s", item, code, capped(out), d.logTail())
	}
	d.findMaster()
	if d.port != port {
		t.Errorf("the new master listens on port %d, want %d", d.port, port)
	}
	again := d.waitWorkers(3)
	if pid := mustHello(t, port); !contains(again, pid) {
		t.Errorf("answered by %d, not one of the new workers %v", pid, again)
	}
	d.signal(unix.SIGQUIT)
	d.stopped(again)
}

// ---------------------------------------------------------------------------
// B, C. Starts that never become ready

// CDAEMON_TIMEOUT runs out while no worker is ready (each blocks before
// Ready and ignores stop signals): the launcher exits 124, and the master
// and every worker are gone.
func TestHostileStartTimeout(t *testing.T) {
	s := startStuck(t, 3, true, "CDAEMON_TIMEOUT=1s")
	code, out := s.l.wait()
	t.Logf("exit %d: %s", code, strings.TrimSpace(capped(out)))
	if code != 124 {
		t.Errorf("launcher exited %d, want 124 (not ready in time)", code)
	}
	s.allGone(t)
}

// The operator interrupts a start whose workers are not ready: the
// launcher exits 128+n, and the master and every worker are gone.
func TestHostileStartInterrupted(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			s := startStuck(t, 3, false)
			launcherPID := s.l.cmd.Process.Pid
			if kids := proctest.Children(launcherPID); len(kids) != 1 || kids[0] != s.master {
				t.Errorf("children of the launcher %d: %v, want the master %d", launcherPID, kids, s.master)
			}
			if kids, want := proctest.Children(s.master), slices.Sorted(slices.Values(s.workers)); !slices.Equal(kids, want) {
				t.Errorf("children of the master %d: %v, want the workers that reported %v", s.master, kids, want)
			}
			if got, want := proctest.Title(s.master), "pfworker: master"; got != want {
				t.Errorf("master %d: title %q, want %q", s.master, got, want)
			}
			if err := unix.Kill(launcherPID, sig); err != nil {
				t.Fatal(err)
			}
			code, out := s.l.wait()
			t.Logf("exit %d: %s", code, strings.TrimSpace(capped(out)))
			if want := 128 + int(sig); code != want {
				t.Errorf("launcher exited %d after %v, want %d", code, sig, want)
			}
			s.allGone(t)
		})
	}
}

// ---------------------------------------------------------------------------
// D. CDAEMON_KEEP_FDS with workers

// A kept fd is open, at its number, in the master and in every worker,
// a replacement included; an inherited fd not kept is open in none.
func TestHostileKeepFDsInWorkers(t *testing.T) {
	d := newDaemon(t, example)
	open := func(name string) (*os.File, string) {
		path := filepath.Join(d.dir, name)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f, path
	}
	// The launcher's fd 3 (not kept: the listener takes fd 3) and fd 4.
	other, otherPath := open("not-kept")
	kept, keptPath := open("kept")
	const fd = 4
	l := d.launchWith(launchOpts{
		env:   []string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", fmt.Sprintf("CDAEMON_KEEP_FDS=%d", fd)},
		extra: []*os.File{other, kept},
	})
	if code, out := l.wait(); code != 0 {
		t.Fatalf("launcher exited %d:\n%s\n%s", code, capped(out), d.logTail())
	}
	d.findMaster()
	workers := d.waitWorkers(2)

	check := func(who string, pid int) {
		t.Helper()
		fds, err := proctest.FDs(pid)
		if err != nil {
			t.Errorf("%s %d: %v", who, pid, err)
			return
		}
		if !sameFile(pid, fd, keptPath) {
			t.Errorf("%s %d (%s): fd %d -> %q, want the kept file %s", who, pid, proctest.Title(pid), fd, fds[fd], keptPath)
		}
		for n := range fds {
			if sameFile(pid, n, otherPath) {
				t.Errorf("%s %d: fd %d -> %s, inherited and not kept, still open", who, pid, n, otherPath)
			}
		}
	}
	check("master", d.master)
	for _, w := range workers {
		check("worker", w)
	}
	if pid := mustHello(t, d.port); !contains(workers, pid) {
		t.Errorf("answered by %d, not a worker %v", pid, workers)
	}

	// kill -9 of a worker: its replacement gets the kept fd too.
	victim := workers[0]
	index := d.index(victim)
	if err := unix.Kill(victim, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !proctest.WaitExit(victim, deadline) {
		t.Fatalf("worker %d survived SIGKILL", victim)
	}
	started := regexp.MustCompile(fmt.Sprintf(`worker\[%d\] started \(pid (\d+)\)`, index))
	var replacement int
	waitFor(t, "a replacement worker", func() bool {
		for _, m := range started.FindAllStringSubmatch(d.log(), -1) {
			if p, _ := strconv.Atoi(m[1]); p != victim && !contains(workers, p) {
				replacement = p
			}
		}
		return replacement != 0
	}, d.logTail)
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[%d\] \(pid %d\) ready`, index, replacement)))
	check("replacement worker", replacement)

	d.signal(unix.SIGQUIT)
	d.stopped(append(workers, replacement))
}

// ---------------------------------------------------------------------------
// E. A unix socket

// helloUnix makes one connection to the socket at path and returns the
// pid that answered Hello and Goodbye; at most 4 kB are read.
func helloUnix(t *testing.T, path string) int {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		t.Fatalf("connection to %s: %v", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	b, err := io.ReadAll(io.LimitReader(c, 4096))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	m := helloRE.FindStringSubmatch(lines[0])
	if err != nil || m == nil || len(lines) != 2 || lines[1] != "Goodbye from "+m[1] {
		t.Fatalf("connection to %s: got %q, %v; want Hello and Goodbye from one pid", path, b, err)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// socketPath is the path of a unix socket in dir, failing the test if it
// is too long for a socket address.
func socketPath(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "pf.sock")
	if len(path) >= 108 {
		t.Fatalf("socket path %s: %d bytes, too long for a unix socket address (TMPDIR?)", path, len(path))
	}
	return path
}

// noSocket fails the test unless the socket file at path is gone.
func noSocket(t *testing.T, path, when string) {
	t.Helper()
	if fi, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		what := fmt.Sprint(err)
		if err == nil {
			what = fi.Mode().String()
		}
		t.Errorf("socket file %s %s: %s; want it removed", path, when, what)
	}
}

// CDAEMON_LISTEN=unix:PATH with workers: the socket file has the
// daemon's umask (077: mode 0700, while the launcher's is 000); a worker
// that retires does not remove it; a graceful stop does; a failed start
// leaves none either.
func TestHostileUnixSocket(t *testing.T) {
	t.Run("graceful_stop", func(t *testing.T) {
		d := newDaemon(t, variant)
		sock := socketPath(t, d.dir)
		l := d.launchWith(launchOpts{
			env:   []string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=unix:" + sock, "CDAEMON_UMASK=077"},
			umask: "000",
		})
		if code, out := l.wait(); code != 0 {
			t.Fatalf("launcher exited %d:\n%s\n%s", code, capped(out), d.logTail())
		}
		d.master = proctest.ReadPIDFile(t, d.pidFile)
		if s, err := proctest.ReadStat(d.master); err != nil || s.PPID != testPID || s.State == 'Z' {
			t.Fatalf("master %d: %+v, %v; want alive, reparented to the test (%d)", d.master, s, err, testPID)
		}
		workers := d.waitWorkers(2)

		fi, err := os.Lstat(sock)
		if err != nil {
			t.Fatalf("socket file: %v", err)
		}
		if fi.Mode().Type() != fs.ModeSocket {
			t.Errorf("%s: mode %v, want a socket", sock, fi.Mode())
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("%s: permissions %#o (%v), want 0700: CDAEMON_UMASK=077, not the launcher's umask 000", sock, perm, fi.Mode())
		}
		if pid := helloUnix(t, sock); !contains(workers, pid) {
			t.Errorf("answered by %d, not a worker %v", pid, workers)
		}

		// TTOU retires worker[1], which exits 0: the socket is the
		// master's, and stays.
		retired := workers[0]
		if d.index(retired) != 1 {
			retired = workers[1]
		}
		d.signal(unix.SIGTTOU)
		d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[1\] \(pid %d\) exited with status 0\n`, retired)))
		if _, err := os.Lstat(sock); err != nil {
			t.Fatalf("socket file after a worker retired: %v; want it kept while the master serves", err)
		}
		if pid := helloUnix(t, sock); pid == retired || !contains(workers, pid) {
			t.Errorf("after TTOU answered by %d, want the remaining worker of %v", pid, workers)
		}

		d.signal(unix.SIGQUIT)
		d.stopped(workers)
		noSocket(t, sock, "after a graceful stop")
	})

	// A worker exits 1 before Ready: the start fails with its status.
	t.Run("worker_fails", func(t *testing.T) {
		d := newDaemon(t, variant)
		sock := socketPath(t, d.dir)
		marker := filepath.Join(d.dir, "crash")
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := d.launchWith(launchOpts{env: []string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=unix:" + sock,
			"PFTEST_CRASH=" + marker}}).wait()
		t.Logf("exit %d: %s", code, strings.TrimSpace(capped(out)))
		if code != 1 {
			t.Errorf("launcher exited %d, want the worker's 1", code)
		}
		noSocket(t, sock, "after a failed start")
		if left := ourProcesses(); len(left) > 0 {
			t.Errorf("left running: %v", left)
		}
	})

	// No worker is ready within CDAEMON_TIMEOUT: the launcher kills the
	// daemon, which cannot clean up after itself.
	t.Run("timeout", func(t *testing.T) {
		d := newDaemon(t, variant)
		sock := socketPath(t, d.dir)
		code, out := d.launchWith(launchOpts{env: []string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=unix:" + sock,
			"PFTEST_NEVER_READY=1", "CDAEMON_TIMEOUT=1s"}}).wait()
		t.Logf("exit %d: %s", code, strings.TrimSpace(capped(out)))
		if code != 124 {
			t.Errorf("launcher exited %d, want 124", code)
		}
		noSocket(t, sock, "after a start that timed out")
	})
}
