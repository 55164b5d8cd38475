package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Order says whether the launcher exited before its daemon was ready. The
// harness decides it only when it is certain: each event is checked for
// the other one at the moment it is seen, so a verdict is never a guess
// made from two clocks. When both had happened before the harness looked
// (it was not scheduled in between), the order is Unknown, counted apart.
type Order int

const (
	OrderNone    Order = iota // the launcher did not exit, or the daemon was never ready
	ExitAfter                 // the launcher was alive when the ready line was read
	ExitBefore                // the FIFO was still empty when the launcher's exit was seen
	OrderUnknown              // both had happened when the harness looked
)

func (o Order) String() string {
	return [...]string{"none", "after", "before", "unknown"}[o]
}

// Checks are what the harness verifies of a daemon from outside, through
// /proc, once it is ready and its launcher has exited.
type Checks struct {
	Done bool // the checks ran (a daemon contender whose start succeeded)

	Reparented  bool // the daemon's parent is the harness, standing in for init: nothing of the launch waits on it
	OwnSession  bool // not in the terminal's session (setsid)
	NoTTY       bool // no controlling terminal (stat's tty_nr is 0)
	StdioNull   bool // fds 0, 1 and 2 are /dev/null
	NothingLeft bool // no other process of the launch is still alive a second after ready

	// Properties shown, not failures: a session leader can acquire a
	// terminal by opening one (the reason for daemon(7)'s second fork),
	// and a kept inherited fd is a leak daemon(7) says to close.
	SessionLeader bool
	KeptFDs       int // of the fds the harness passed, how many the daemon still has

	Problem string // the first failed check, in words
}

// Failed reports whether a check every daemon must pass failed.
func (c Checks) Failed() bool {
	return c.Done && !(c.Reparented && c.OwnSession && c.NoTTY && c.StdioNull && c.NothingLeft)
}

// Trial is one start of one contender.
type Trial struct {
	Experiment string // "start", "init", "fds"
	Level      Level
	Contender  string // Contender.Key
	Round      int

	Ready        time.Duration // launcher exec until the daemon's ready line (the daemon's own clock reading)
	ReadyTimeout bool          // no ready line within the timeout: Ready is the timeout
	Exit         time.Duration // launcher exec until the harness saw it exit
	Exited       bool
	Order        Order

	CPU      time.Duration // CPU of every process of the launch, until the checks were done
	CPUKnown bool
	RSSKB    int // the daemon's peak resident set (VmHWM)
	Execs    int // execve calls of the launch; -1 when unknown
	Inits    int // init() runs of benchdaemon (Go runtime starts)
	Checks   Checks
	Err      string // the start failed: why, with what the terminal showed

	// Stages are, for cdaemon, when each stage of the sequence was
	// recorded (cdaemon.Stages), from the launcher's exec: the
	// constructor's start, the first child, after setsid, the daemon.
	Stages []time.Duration
}

// Failed reports whether the start failed (and is left out of timings).
func (t Trial) Failed() bool { return t.Err != "" }

// Level is a setting of the scaling experiments: init() work of the Go
// app and inherited fds. The start-up experiment runs at Level{FDs: 1}.
type Level struct {
	InitWork time.Duration
	FDs      int
}

func (l Level) String() string {
	return fmt.Sprintf("init %v, %d fds", l.InitWork, l.FDs)
}

// runner runs trials; it holds what lives across them.
type runner struct {
	progs    *Programs
	term     *Terminal
	tree     tree // the current trial's
	execs    *execCounter
	execNote string // why execve calls are not counted, if they are not
	timeout  time.Duration
	settle   time.Duration // how long other processes of a launch may take to exit after ready
	work     string
	marker   string // the file inherited fds point to
	seq      int
	treeNote string // why trees are not cgroups, if they are not
	noCgroup bool

	probeLimit bool   // read the next launcher's RLIMIT_NOFILE
	seenLimit  uint64 // what it was
}

func monotonic() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// trial starts c once and measures it. It returns only once every process
// it started is dead and reaped; an error is returned only when that
// cannot be ensured, and then the benchmark stops.
func (r *runner) trial(c Contender, lv Level) (t Trial, fatal error) {
	t = Trial{Level: lv, Contender: c.Key, Execs: -1}
	r.seq++
	dir := filepath.Join(r.work, "trial"+strconv.Itoa(r.seq))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return t, err
	}
	defer os.RemoveAll(dir)
	fifo := filepath.Join(dir, "ready")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return t, fmt.Errorf("mkfifo: %w", err)
	}
	// O_RDWR: the FIFO has a writer for as long as we hold it, so a
	// daemon's open never blocks and a closed writer is no EOF here.
	rfd, err := unix.Open(fifo, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return t, fmt.Errorf("open fifo: %w", err)
	}
	defer unix.Close(rfd)
	inherited, err := r.openMarkers(lv.FDs)
	if err != nil {
		return t, err
	}
	defer closeAll(inherited)

	initLog := filepath.Join(dir, "inits")
	env := append(launcherEnv(os.Environ()), "BENCH_FIFO="+fifo, "BENCH_INITLOG="+initLog)
	if lv.InitWork > 0 {
		env = append(env, "BENCH_INIT_WORK="+lv.InitWork.String())
	}
	env = append(env, c.Env...)
	argv := c.Argv(r.progs)
	pidfd := -1
	sys := &syscall.SysProcAttr{Foreground: true, Ctty: r.term.slave, PidFD: &pidfd}
	// A new cgroup for every trial: after a cgroup.kill, this kernel
	// (6.18) kills every process later cloned into the same group with
	// CLONE_INTO_CGROUP, as if the kill were still going on.
	var note string
	if r.tree, note = newTree("t"+strconv.Itoa(r.seq), r.noCgroup); note != "" && r.seq == 1 {
		r.treeNote = note
	}
	defer r.tree.close()
	r.tree.attach(sys)
	attr := &syscall.ProcAttr{Dir: dir, Env: env, Sys: sys,
		Files: []uintptr{uintptr(r.term.slave), uintptr(r.term.slave), uintptr(r.term.slave)}}

	cpu0, _ := r.tree.cpu()
	ru0 := childrenCPU()
	r.execs.reset()
	mark := r.term.mark()
	t0 := monotonic()
	pid, _, err := syscall.StartProcess(argv[0], argv, attr)
	if os.Getenv("BENCH_DEBUG_T0") != "" {
		f, _ := os.OpenFile(os.Getenv("BENCH_DEBUG_T0"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		fmt.Fprintf(f, "%s %d\n", c.Key, int64(t0))
		f.Close()
	}
	if err != nil {
		t.Err = fmt.Sprintf("start %s: %v", argv[0], err)
		return t, nil
	}
	defer unix.Close(pidfd)
	deadline := time.Now().Add(r.timeout)
	if r.probeLimit {
		// Once per experiment, in its first (warm-up) start.
		r.seenLimit, r.probeLimit = launcherNoFile(pid), false
	}

	daemon := r.watch(&t, c, pid, pidfd, rfd, t0, deadline)
	if t.Err != "" {
		t.Err += terminalQuote(r.term.since(mark))
	}
	if !t.Failed() && !t.ReadyTimeout && !c.Floor && t.Exited {
		t.Checks = r.check(daemon, pid, inherited)
	}
	if daemon > 0 {
		t.RSSKB, _ = statusKB(daemon, "VmHWM")
	}
	if cpu, ok := r.tree.cpu(); ok {
		t.CPU, t.CPUKnown = cpu-cpu0, true
	}
	if err := r.tree.kill(time.Now().Add(10 * time.Second)); err != nil {
		return t, err
	}
	if !t.CPUKnown {
		// Without a cgroup: every process of the launch is reaped now,
		// by us or by a parent we reaped, so RUSAGE_CHILDREN has it all
		// (but for the time spent dying of SIGKILL).
		t.CPU, t.CPUKnown = childrenCPU()-ru0, true
	}
	if n, ok := r.execs.count(pid); ok && r.execNote == "" {
		t.Execs = n
	}
	t.Inits = countLines(initLog)
	return t, nil
}

// watch waits for the ready line and, for a daemon, the launcher's exit;
// it returns the pid that wrote the ready line.
func (r *runner) watch(t *Trial, c Contender, pid, pidfd, rfd int, t0 time.Duration, deadline time.Time) (daemon int) {
	fds := []unix.PollFd{{Fd: int32(rfd), Events: unix.POLLIN}, {Fd: int32(pidfd), Events: unix.POLLIN}}
	var line []byte
	ready := false
	for !ready || (!t.Exited && !c.Floor) {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			t.Err = fmt.Sprintf("poll: %v", err)
			return daemon
		}
		if fds[1].Revents != 0 && !t.Exited {
			seen := monotonic()
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
				t.Err = fmt.Sprintf("wait4 launcher: %v", err)
				return daemon
			}
			t.Exited, t.Exit = true, seen-t0
			fds[1].Fd = -1
			if !ready {
				t.Order = ExitBefore
				if readable(rfd) {
					t.Order = OrderUnknown
				}
			}
			if c.Floor {
				t.Err = "the program " + describeStatus(ws) + "; a floor must keep running"
				return daemon
			}
			if ws != 0 {
				t.Err = "launcher " + describeStatus(ws)
				return daemon
			}
		}
		if fds[0].Revents != 0 && !ready {
			buf := make([]byte, 512)
			n, _ := unix.Read(rfd, buf)
			line = append(line, buf[:max(n, 0)]...)
			i := bytes.IndexByte(line, '\n')
			if i < 0 {
				continue
			}
			ready = true
			if !t.Exited {
				t.Order = ExitAfter
				if readable(pidfd) {
					t.Order = OrderUnknown
				}
			}
			f := strings.Fields(string(line[:i]))
			var ns int64
			if len(f) >= 2 {
				daemon, _ = strconv.Atoi(f[0])
				ns, _ = strconv.ParseInt(f[1], 10, 64)
			}
			if daemon <= 0 || ns <= 0 {
				t.Err = fmt.Sprintf("bad ready line %q", line[:i])
				return daemon
			}
			t.Ready = time.Duration(ns) - t0
			if len(f) > 3 && f[2] == "stages" {
				for _, v := range f[3:] {
					n, _ := strconv.ParseInt(v, 10, 64)
					t.Stages = append(t.Stages, time.Duration(n)-t0)
				}
			}
		}
	}
	// The deadline: a start still not ready is a censored sample (at
	// least the timeout), not a failure; a launcher that never exits
	// after its daemon is ready is one.
	if !ready {
		t.Ready, t.ReadyTimeout = r.timeout, true
	}
	if !t.Exited && !c.Floor {
		t.Exit = r.timeout
		if ready {
			t.Err = fmt.Sprintf("launcher still running %v after start, its daemon ready", r.timeout)
		}
	}
	return daemon
}

// readable polls fd without waiting.
func readable(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, _ := unix.Poll(p, 0)
	return n > 0 && p[0].Revents != 0
}

func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("was killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("ended with wait status %#x", int(ws))
}

// check runs the daemon checks. It first gives the other processes of the
// launch (an exiting intermediate) up to r.settle to be gone, waiting on
// their pidfds; whoever is still alive then was left behind.
func (r *runner) check(daemon, launcher int, inherited []int) Checks {
	c := Checks{Done: true}
	var problems []string
	fail := func(ok *bool, format string, args ...any) {
		*ok = false
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	c.NothingLeft = true
	if left := r.settleOthers(daemon); len(left) > 0 {
		var names []string
		for _, p := range left {
			names = append(names, describeProc(p))
		}
		fail(&c.NothingLeft, "left behind: %s", strings.Join(names, ", "))
	}
	st, err := readStat(daemon)
	if err == nil && st.PPID != os.Getpid() {
		// An exiting intermediate can leave the cgroup before its
		// children are reparented (cgroup_exit comes before
		// exit_notify): if the parent is on its way out, wait for it.
		if fd, perr := unix.PidfdOpen(st.PPID, 0); perr == nil {
			waitReadable(fd, time.Now().Add(r.settle))
			unix.Close(fd)
			st, err = readStat(daemon)
		}
	}
	if err != nil {
		c.Problem = fmt.Sprintf("daemon %d: %v", daemon, err)
		return c
	}
	c.Reparented, c.OwnSession, c.NoTTY, c.StdioNull = true, true, true, true
	if st.PPID != os.Getpid() {
		fail(&c.Reparented, "parent is %s, not the harness", describeProc(st.PPID))
	}
	if self, _ := unix.Getsid(0); st.SID == self {
		fail(&c.OwnSession, "still in the terminal's session %d", st.SID)
	}
	if st.TTY != 0 {
		fail(&c.NoTTY, "controlling terminal %#x", st.TTY)
	}
	for fd := 0; fd < 3; fd++ {
		if to := fdTarget(daemon, fd); to != "/dev/null" {
			fail(&c.StdioNull, "fd %d is %s", fd, to)
		}
	}
	c.SessionLeader = st.SID == daemon
	if len(inherited) > 0 {
		c.KeptFDs = fdsTo(daemon, r.marker)
	}
	c.Problem = strings.Join(problems, "; ")
	return c
}

// settleOthers waits, up to r.settle, for every process of the launch but
// the daemon to exit, and returns those still alive.
func (r *runner) settleOthers(daemon int) []int {
	var pids []int
	var fds []unix.PollFd
	for _, p := range r.tree.procs() {
		if p == daemon {
			continue
		}
		fd, err := unix.PidfdOpen(p, 0)
		if err != nil {
			continue // gone already
		}
		pids = append(pids, p)
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	defer func() {
		for _, f := range fds {
			unix.Close(int(f.Fd))
		}
	}()
	deadline := time.Now().Add(r.settle)
	for {
		var alive []int
		for i, f := range fds {
			if f.Fd >= 0 && !readable(int(f.Fd)) {
				alive = append(alive, pids[i])
			} else if f.Fd >= 0 {
				unix.Close(int(f.Fd))
				fds[i].Fd = -1
			}
		}
		left := time.Until(deadline)
		if len(alive) == 0 || left <= 0 {
			// A zombie is dead: its parent (ours, or another of the
			// launch) has not reaped it yet.
			return slices.DeleteFunc(alive, func(p int) bool {
				st, err := readStat(p)
				return err != nil || st.State == 'Z'
			})
		}
		unix.Poll(fds, int(left/time.Millisecond)+1)
	}
}

// openMarkers opens n fds without O_CLOEXEC, so that the launcher inherits
// them, as a daemon started from a shell or a supervisor inherits what its
// parent leaked. They all point to one file, so the daemon's own fds are
// never counted as inherited.
func (r *runner) openMarkers(n int) ([]int, error) {
	fds := make([]int, 0, n)
	for range n {
		fd, err := unix.Open(r.marker, unix.O_RDONLY, 0)
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("open %d inherited fds: %w (RLIMIT_NOFILE?)", n, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func terminalQuote(s string) string { return quote("the terminal", s) }

// quote is "; <where> showed: <s>", on one line and cut short, or "".
func quote(where, s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if s == "" {
		return ""
	}
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return "; " + where + " showed: " + strings.ReplaceAll(s, "\n", " / ")
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte{'\n'})
}

// launcherEnv is env without what would change the path a launcher takes:
// a supervisor's variables (gowrap would not daemonize under them), the
// daemon triggers and the peers' own markers.
func launcherEnv(env []string) []string {
	drop := []string{"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
		"INVOCATION_ID", "WATCHDOG_PID", "WATCHDOG_USEC", "_GO_DAEMON",
		"__DAEMON_STAGE", "GOWRAP_REEXEC_CHILD", sessionEnv}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "CDAEMON" || strings.HasPrefix(k, "CDAEMON_") || strings.HasPrefix(k, "BENCH_") || slices.Contains(drop, k) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

var errStopped = errors.New("bench: stopped")
