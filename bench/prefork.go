package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The prefork experiment: how fast a master replaces a worker killed with
// SIGKILL, for cdaemon's pre-runtime master (it forks the worker from the
// image as it was before the Go runtime started: no exec, no dynamic
// loading) against a Go master that fork+execs its workers (cmd/execmaster,
// as Go servers do today). Both run one worker of the same Go program, so
// each kill leaves the listener without anyone accepting; the latency runs
// from the kill until a connection, made right after it, gets "hello"
// from the replacement. The killed worker never runs again, so the
// connection waits in the listen backlog until the new worker accepts.

// Master is one of the two masters of the prefork experiment.
type Master struct {
	Key, Name string
	Short     string // the chart's label
	RSSKB     int    // resident set of the master after the respawns
	HWMKB     int    // its peak
	Threads   int
	// A spare's cost (CDAEMON_SPARES): its resident set, and its
	// proportional share (Pss: pages shared with the worker and the
	// master count by halves), 0 for masters without one.
	SpareRSSKB, SparePSSKB int
	Err                    string
}

// Respawn is one kill of a worker and its replacement.
type Respawn struct {
	Master  string
	Round   int
	Latency time.Duration // SIGKILL until a connection was answered by the replacement
	Dead    time.Duration // SIGKILL until the old worker was gone (its pidfd readable): the kernel's part
	Ready   time.Duration // SIGKILL until the replacement's ready line (its own clock)
	Err     string
}

// youngWorker is cdaemon's prefork rule (csrc/prefork.c, YOUNG_MS): a
// worker that dies younger than 1 s counts as a crash and is replaced
// after a backoff. Every worker is left older than this before it is
// killed, for both masters alike.
const youngWorker = 1200 * time.Millisecond

type master struct {
	Master
	tree    tree
	pid     int
	fifo    int
	port    int
	worker  int
	readyAt time.Duration // monotonic time of the current worker's ready line
	log     string        // the master's stdout and stderr
}

func (r *runner) prefork(res *Results) error {
	if res.Config.Respawns <= 0 {
		return nil
	}
	p := r.progs
	specs := []struct {
		key, short, name string
		argv             []string
		env              []string
	}{
		{"cdaemon", "cdaemon, pre-runtime fork", "cdaemon prefork master (`CDAEMON_WORKERS=1`: fork of the pre-runtime image)",
			[]string{p.Daemon}, []string{"CDAEMON=1", "CDAEMON_FOREGROUND=1", "CDAEMON_WORKERS=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0"}},
		{"cdaemon-spare", "cdaemon, 1 spare", "cdaemon prefork master with a spare (`CDAEMON_WORKERS=1 CDAEMON_SPARES=1`: a started worker released at once)",
			[]string{p.Daemon}, []string{"CDAEMON=1", "CDAEMON_FOREGROUND=1", "CDAEMON_WORKERS=1", "CDAEMON_SPARES=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0"}},
		{"exec", "Go master, fork+exec", "Go master, fork+exec of each worker (`cmd/execmaster`)",
			[]string{p.ExecMaster, "--", p.Daemon}, nil},
	}
	var ms []*master
	defer func() {
		for _, m := range ms {
			m.tree.signal()
		}
		for _, m := range ms {
			m.tree.kill(time.Now().Add(10 * time.Second))
			m.tree.close()
			unix.Close(m.fifo)
		}
	}()
	for _, s := range specs {
		m, err := r.startMaster(s.key, s.name, s.argv, s.env)
		if m != nil {
			m.Short = s.short
		}
		if m != nil {
			ms = append(ms, m)
		}
		if err != nil {
			return err
		}
	}
	deadline := time.Now().Add(r.timeout)
	for _, m := range ms {
		if m.Err != "" {
			continue
		}
		pid, at, port, err := readReady(m.fifo, deadline)
		if err != nil {
			out, _ := os.ReadFile(m.log)
			m.Err = fmt.Sprintf("first worker: %v%s", err, quote("its log", string(out)))
			continue
		}
		m.worker, m.readyAt, m.port = pid, at, port
	}
	began := time.Now()
	warmup := res.Config.Warmup
	for round := -warmup; round < res.Config.Respawns; round++ {
		for k := range ms {
			if res.Config.stopped() {
				return errStopped
			}
			m := ms[(k+round+warmup)%len(ms)]
			if m.Err != "" {
				continue
			}
			rs := r.respawnOnce(m)
			if round >= 0 {
				rs.Master, rs.Round = m.Key, round
				res.Respawns = append(res.Respawns, rs)
			}
		}
		if w := res.Config.Progress; w != nil && round >= 0 && ((round+1)%10 == 0 || round+1 == res.Config.Respawns) {
			fmt.Fprintf(w, "bench: prefork: round %d/%d (%v)\n", round+1, res.Config.Respawns, time.Since(began).Round(time.Second))
		}
	}
	for _, m := range ms {
		if m.Err == "" {
			m.RSSKB, _ = statusKB(m.pid, "VmRSS")
			m.HWMKB, _ = statusKB(m.pid, "VmHWM")
			m.Threads, _ = statusKB(m.pid, "Threads")
			m.SpareRSSKB, m.SparePSSKB = spareMemory(m.pid, m.log, time.Now().Add(r.timeout))
		}
		res.Masters = append(res.Masters, m.Master)
	}
	return nil
}

func (r *runner) startMaster(key, name string, argv, extra []string) (*master, error) {
	m := &master{Master: Master{Key: key, Name: name}}
	// The same kind of tree as the trials' (the report says which).
	m.tree, _ = newTree("prefork-"+key, r.noCgroup)
	dir := filepath.Join(r.work, "prefork-"+key)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	fifo := filepath.Join(dir, "ready")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return nil, err
	}
	fd, err := unix.Open(fifo, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	m.fifo = fd
	env := append(launcherEnv(os.Environ()), "BENCH_APPROACH=worker", "BENCH_FIFO="+fifo)
	env = append(env, extra...)
	sys := &syscall.SysProcAttr{Setpgid: true}
	m.tree.attach(sys)
	// The masters log to a file, not to the harness's terminal: a pty
	// write would wake the harness in the middle of every respawn.
	m.log = filepath.Join(dir, "master.log")
	logf, err := os.Create(m.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	m.pid, _, err = syscall.StartProcess(argv[0], argv, &syscall.ProcAttr{Dir: dir, Env: env, Sys: sys,
		Files: []uintptr{null.Fd(), logf.Fd(), logf.Fd()}})
	if err != nil {
		m.Err = fmt.Sprintf("start %s: %v", argv[0], err)
	}
	return m, nil
}

// respawnOnce kills m's worker and times its replacement.
func (r *runner) respawnOnce(m *master) (rs Respawn) {
	// Let the worker grow old enough not to count as a crash.
	if age := monotonic() - m.readyAt; age < youngWorker {
		time.Sleep(youngWorker - age)
	}
	old := m.worker
	pidfd, err := unix.PidfdOpen(old, 0)
	if err != nil {
		rs.Err = fmt.Sprintf("pidfd_open worker %d: %v", old, err)
		return rs
	}
	defer unix.Close(pidfd)
	// The client's socket is made before the clock starts, and it uses
	// plain blocking system calls, not Go's netpoller: what is measured
	// is the master and its worker, not the client's scheduling.
	conn, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		rs.Err = fmt.Sprintf("socket: %v", err)
		return rs
	}
	defer unix.Close(conn)
	deadline := time.Now().Add(r.timeout)
	t0 := monotonic()
	if err := unix.Kill(old, unix.SIGKILL); err != nil {
		rs.Err = fmt.Sprintf("kill worker %d: %v", old, err)
		return rs
	}
	// Connect at once: the killed worker never runs again (SIGKILL), so
	// the connection waits in the listen backlog, which the master
	// holds, until a replacement accepts it; the answer names who did.
	// Meanwhile the old worker's pidfd says when the kernel was done
	// with it.
	if err := unix.Connect(conn, &unix.SockaddrInet4{Port: m.port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		rs.Err = fmt.Sprintf("connect: %v", err)
		return rs
	}
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}, {Fd: int32(conn), Events: unix.POLLIN}}
	var answered time.Duration
	for rs.Dead == 0 || answered == 0 {
		left := time.Until(deadline)
		if left <= 0 {
			if rs.Dead == 0 {
				rs.Err = fmt.Sprintf("worker %d still alive after SIGKILL", old)
			} else {
				rs.Err = "no answer from a replacement"
			}
			return rs
		}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			rs.Err = fmt.Sprintf("poll: %v", err)
			return rs
		}
		now := monotonic() - t0
		if fds[0].Revents != 0 && rs.Dead == 0 {
			rs.Dead, fds[0].Fd = now, -1
		}
		if fds[1].Revents != 0 && answered == 0 {
			answered, fds[1].Fd = now, -1
		}
	}
	rs.Latency = answered
	if answered < rs.Dead {
		// Cannot be: the master learns of the death when the pidfd does.
		rs.Err = fmt.Sprintf("answered %v after the kill, before the old worker was gone (%v)", answered, rs.Dead)
	}
	// The answer is there: the read only collects it, bounded anyway.
	tv := unix.NsecToTimeval(max(time.Until(deadline), time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(conn, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		rs.Err = fmt.Sprintf("SO_RCVTIMEO: %v", err)
		return rs
	}
	got, err := readAll(conn, 256)
	if err != nil {
		rs.Err = fmt.Sprintf("read: %v", err)
		return rs
	}
	pid, at, _, err := readReady(m.fifo, deadline)
	if err != nil {
		rs.Err = fmt.Sprintf("replacement's ready line: %v", err)
		return rs
	}
	rs.Ready = at - t0
	m.worker, m.readyAt = pid, at
	if want := fmt.Sprintf("hello %d\n", pid); string(got) != want && rs.Err == "" {
		rs.Err = fmt.Sprintf("answer %q, want %q from the replacement", got, want)
	}
	return rs
}

// readAll reads a blocking socket until EOF, at most limit bytes.
func readAll(fd, limit int) ([]byte, error) {
	var got []byte
	buf := make([]byte, 256)
	for len(got) < limit {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, nil
		}
		got = append(got, buf[:n]...)
	}
	return got, fmt.Errorf("more than %d bytes", limit)
}

// readReady reads one ready line "pid ns [port]" from the FIFO.
func readReady(fd int, deadline time.Time) (pid int, at time.Duration, port int, err error) {
	var line []byte
	buf := make([]byte, 256)
	for !bytes.Contains(line, []byte{'\n'}) {
		if err := waitReadable(fd, deadline); err != nil {
			return 0, 0, 0, fmt.Errorf("no ready line: %w", err)
		}
		n, _ := unix.Read(fd, buf)
		line = append(line, buf[:max(n, 0)]...)
	}
	f := strings.Fields(string(line[:bytes.IndexByte(line, '\n')]))
	if len(f) < 2 {
		return 0, 0, 0, fmt.Errorf("bad ready line %q", line)
	}
	pid, _ = strconv.Atoi(f[0])
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	if len(f) > 2 {
		port, _ = strconv.Atoi(f[2])
	}
	return pid, time.Duration(ns), port, nil
}

// spareMemory is the resident set and the Pss of master's child titled
// "...: spare", in kB, once the master logged it waiting (its runtime
// started and its init()s done: a new spare is forked only once the
// worker it follows is ready, so right after a respawn it may still be
// starting); 0, 0 for a master that keeps none, or none by the deadline.
func spareMemory(master int, logPath string, deadline time.Time) (rss, pss int) {
	for {
		log, _ := os.ReadFile(logPath)
		if !bytes.Contains(log, []byte("spare started")) {
			return 0, 0 // a master without spares
		}
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", master, master))
		for _, f := range strings.Fields(string(kids)) {
			pid, _ := strconv.Atoi(f)
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if !strings.HasSuffix(strings.TrimRight(string(cmdline), "\x00"), ": spare") ||
				!bytes.Contains(log, []byte(fmt.Sprintf("spare (pid %d) waiting", pid))) {
				continue
			}
			rss, _ = statusKB(pid, "VmRSS")
			rollup, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
			for _, line := range strings.Split(string(rollup), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && k == "Pss" {
					pss, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				}
			}
			return rss, pss
		}
		if time.Now().After(deadline) {
			return 0, 0
		}
		// The harness, not a test: a short bounded poll of the master's
		// log and /proc, after the measurements are done.
		time.Sleep(10 * time.Millisecond)
	}
}
