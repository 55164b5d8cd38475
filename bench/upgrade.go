package bench

import (
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The upgrade experiment (issue 16): a new binary takes over a running
// daemon on USR2 while a loopback client load runs. Two kinds, each
// started once and upgraded again and again, interleaved round by round:
// cdaemon's prefork master (CDAEMON_WORKERS=2), which re-execs itself in
// place, keeps its pid, forks a new generation of workers and QUITs the
// old one; and a single-process daemon (no workers), which gowrap upgrades
// the tableflip way, starting its successor with the listeners and then
// draining. The program is examples/prefork/testdata/versioned, the
// upgrade tests' own, built twice (v1, v2): each answer names the version
// and the pid that served it. Each round renames the other build over the
// path the daemon was started from, as a deploy does, and sends USR2 (a
// plain signal, as `kill -USR2` does: `app upgrade` would add its own Go
// start to the time); the outcome is seen from outside only: the answers
// of the load, and the old processes' pidfds.

// Upgrade is one upgrade in place under load.
type Upgrade struct {
	Kind     string // "prefork" or "single"
	Round    int
	From, To string // versions
	// USR2 until the first answer from To, and until every process of
	// the old generation (the prefork master's old workers, or the old
	// single process) was gone: its pidfd readable.
	NewServes, OldGone time.Duration
	Conns, Failed      int // connections of the round's load, and those that failed (refused, reset, no or a bad answer)
	Stale              int // answers from another version than To to connections opened after the old generation was gone
	OldPID, NewPID     int // the process sent USR2 and the one serving after (the prefork master both times)
	MasterKept         bool
	FirstFail          string // the first failed connection's error
	Err                string
}

// upgradeLoad is the client load of a round: upgradeConns connections at
// a time, in a loop, each answer checked.
const upgradeConns = 4

// upgradeAfter is how many answers the load must get after the old
// generation was gone before the round ends: they must all be To's.
const upgradeAfter = 40

// UpgradeKinds names the two daemons of the experiment, in table order.
var UpgradeKinds = []struct{ Key, Name string }{
	{"prefork", "prefork master (`CDAEMON_WORKERS=2`): re-exec in place, new generation of workers, old one QUIT"},
	{"single", "single process (no workers): successor started with the listeners, old process drains (tableflip's way)"},
}

type upDaemon struct {
	kind, dir, bin, pidFile, logFile string
	tree                             tree
	port, pid                        int
	version                          string
	err                              string
}

func (r *runner) upgrade(res *Results) error {
	if res.Config.Upgrades <= 0 {
		return nil
	}
	res.UpgradeStart = map[string]string{}
	var ds []*upDaemon
	defer func() {
		for _, d := range ds {
			d.tree.signal()
		}
		for _, d := range ds {
			d.tree.kill(time.Now().Add(10 * time.Second))
			d.tree.close()
		}
	}()
	for _, k := range UpgradeKinds {
		d, err := r.startUpgradable(k.Key)
		if d != nil {
			ds = append(ds, d)
		}
		if err != nil {
			return err
		}
		if d.err != "" {
			res.UpgradeStart[k.Key] = d.err
		}
	}
	began := time.Now()
	warmup := res.Config.Warmup
	for round := -warmup; round < res.Config.Upgrades; round++ {
		for k := range ds {
			if res.Config.stopped() {
				return errStopped
			}
			d := ds[(k+round+warmup)%len(ds)]
			if d.err != "" {
				continue
			}
			u := r.upgradeOnce(d)
			if round >= 0 {
				u.Kind, u.Round = d.kind, round
				res.Upgrades = append(res.Upgrades, u)
			}
			if u.Err != "" && d.pid == 0 {
				d.err = "lost after round " + strconv.Itoa(round) + ": " + u.Err
				res.UpgradeStart[d.kind] = d.err
			}
		}
		if w := res.Config.Progress; w != nil && round >= 0 && ((round+1)%5 == 0 || round+1 == res.Config.Upgrades) {
			fmt.Fprintf(w, "bench: upgrade: round %d/%d (%v)\n", round+1, res.Config.Upgrades, time.Since(began).Round(time.Second))
		}
	}
	return nil
}

// startUpgradable installs v1 as dir/app and starts it as a daemon
// (CDAEMON=1: the launcher exits once it is ready), the prefork kind with
// two workers. The daemon is reparented to the harness.
func (r *runner) startUpgradable(kind string) (*upDaemon, error) {
	d := &upDaemon{kind: kind, dir: filepath.Join(r.work, "upgrade-"+kind)}
	d.tree, _ = newTree("upgrade-"+kind, r.noCgroup)
	if err := os.Mkdir(d.dir, 0o755); err != nil {
		return nil, err
	}
	d.bin = filepath.Join(d.dir, "app")
	d.pidFile = filepath.Join(d.dir, "app.pid")
	d.logFile = filepath.Join(d.dir, "app.log")
	if err := replaceFile(r.progs.Versioned[0], d.bin); err != nil {
		return d, err
	}
	d.version = "v1"
	// A free port, chosen here so that the load knows it; a clash with
	// another program fails the start with the daemon's own message.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return d, err
	}
	d.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	env := append(launcherEnv(os.Environ()), "CDAEMON=1", "CDAEMON_PIDFILE="+d.pidFile, "CDAEMON_LOG="+d.logFile,
		"CDAEMON_TIMEOUT="+r.timeout.String(), fmt.Sprintf("CDAEMON_LISTEN=tcp:127.0.0.1:%d", d.port))
	if kind == "prefork" {
		env = append(env, "CDAEMON_WORKERS=2")
	}
	out, err := os.Create(filepath.Join(d.dir, "launcher.out"))
	if err != nil {
		return d, err
	}
	defer out.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return d, err
	}
	defer null.Close()
	sys := &syscall.SysProcAttr{Setpgid: true}
	d.tree.attach(sys)
	pid, _, err := syscall.StartProcess(d.bin, []string{d.bin}, &syscall.ProcAttr{Dir: d.dir, Env: env, Sys: sys,
		Files: []uintptr{null.Fd(), out.Fd(), out.Fd()}})
	if err != nil {
		d.err = fmt.Sprintf("start %s: %v", d.bin, err)
		return d, nil
	}
	ws, err := waitChild(pid, time.Now().Add(r.timeout+5*time.Second))
	if err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		b, _ := os.ReadFile(out.Name())
		d.err = fmt.Sprintf("launcher: %s %v%s", describeStatus(ws), err, quote("its output", string(b)))
		return d, nil
	}
	b, err := os.ReadFile(d.pidFile)
	if d.pid, _ = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || d.pid <= 0 {
		d.err = fmt.Sprintf("pid file %s: %q %v", d.pidFile, b, err)
	}
	return d, nil
}

// waitChild waits for the child pid to exit, until deadline, and reaps it.
func waitChild(pid int, deadline time.Time) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return ws, err
	}
	defer unix.Close(pidfd)
	if err := waitReadable(pidfd, deadline); err != nil {
		return ws, fmt.Errorf("pid %d still running: %w", pid, err)
	}
	_, err = unix.Wait4(pid, &ws, 0, nil)
	return ws, err
}

// replaceFile puts a copy of from at path as a deploy does: written
// aside, then renamed over, so that the running image's file is left as
// it is.
func replaceFile(from, path string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// upgradeOnce puts the other version at d's path, starts the load, sends
// USR2 and waits for the old generation to be gone.
func (r *runner) upgradeOnce(d *upDaemon) (u Upgrade) {
	u.From, u.To = d.version, "v2"
	next := r.progs.Versioned[1]
	if d.version == "v2" {
		u.To, next = "v1", r.progs.Versioned[0]
	}
	u.OldPID = d.pid
	deadline := time.Now().Add(r.timeout + 5*time.Second)
	if err := replaceFile(next, d.bin); err != nil {
		u.Err = err.Error()
		return u
	}
	// The old generation: the master's workers, or the process itself.
	old := []int{d.pid}
	if d.kind == "prefork" {
		old = children(d.pid)
		if len(old) != 2 {
			u.Err = fmt.Sprintf("master %d has workers %v, want 2", d.pid, old)
			return u
		}
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, pid := range append([]int{d.pid}, old...) {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			u.Err = fmt.Sprintf("pidfd_open %d: %v", pid, err)
			return u
		}
		fds = append(fds, fd)
	}
	self := fds[0]
	if d.kind == "prefork" {
		fds = fds[1:]
		defer unix.Close(self)
	}

	l := startUpgradeLoad(d.port, deadline)
	defer func() {
		u.Conns, u.Failed, u.FirstFail = l.end()
	}()
	// The load runs on the old version first.
	if err := l.waitAnswers(upgradeAfter, 0, deadline); err != nil {
		u.Err = "before USR2: " + err.Error()
		return u
	}
	t0 := monotonic()
	if err := unix.PidfdSendSignal(self, unix.SIGUSR2, nil, 0); err != nil {
		u.Err = fmt.Sprintf("USR2 to %d: %v", d.pid, err)
		return u
	}
	for i, fd := range fds {
		if err := waitReadable(fd, deadline); err != nil {
			u.Err = fmt.Sprintf("old process %d still running: %v%s", old[i], err, d.logTail())
			return u
		}
	}
	gone := monotonic()
	u.OldGone = gone - t0
	if d.kind == "single" {
		// The old process was reparented to the harness: reap it (a
		// zombie now, its pid held by the pidfd).
		var ws unix.WaitStatus
		if _, err := unix.Wait4(d.pid, &ws, 0, nil); err != nil {
			u.Err = fmt.Sprintf("wait4 old process %d: %v", d.pid, err)
		} else if !ws.Exited() || ws.ExitStatus() != 0 {
			u.Err = fmt.Sprintf("old process %d: %s, want an exit 0%s", d.pid, describeStatus(ws), d.logTail())
		}
	}
	if err := l.waitAnswers(upgradeAfter, gone, deadline); err != nil && u.Err == "" {
		u.Err = "after the old generation was gone: " + err.Error()
	}
	l.stopLoad()
	as := l.snapshot()
	newPIDs := map[int]bool{}
	for _, a := range as {
		if a.version == u.To && (u.NewServes == 0 || a.answered-t0 < u.NewServes) && a.answered > t0 {
			u.NewServes = a.answered - t0
		}
		if a.opened > gone {
			if a.version != u.To {
				u.Stale++
			} else {
				newPIDs[a.pid] = true
			}
		}
	}
	if u.NewServes == 0 && u.Err == "" {
		u.Err = "no answer from " + u.To
	}
	switch d.kind {
	case "prefork":
		// The master keeps its pid: alive, still in the pid file, and
		// every answer after the switch from one of its children.
		u.NewPID = d.pid
		u.MasterKept = !readable(self) && pidFileSays(d.pidFile) == d.pid
		for pid := range newPIDs {
			if st, err := readStat(pid); err == nil && st.PPID != d.pid {
				u.MasterKept = false
			}
		}
		if !u.MasterKept && u.Err == "" {
			u.Err = fmt.Sprintf("master %d not kept: pid file says %d, new workers %v", d.pid, pidFileSays(d.pidFile), slices.Sorted(maps.Keys(newPIDs)))
		}
	case "single":
		u.NewPID = pidFileSays(d.pidFile)
		if len(newPIDs) != 1 || !newPIDs[u.NewPID] || u.NewPID == d.pid {
			if u.Err == "" {
				u.Err = fmt.Sprintf("after the upgrade: answers from pids %v, pid file says %d (old %d)", slices.Sorted(maps.Keys(newPIDs)), u.NewPID, d.pid)
			}
		}
		if u.NewPID > 0 && u.NewPID != d.pid {
			d.pid = u.NewPID
		} else {
			d.pid = 0
		}
	}
	if u.Err == "" {
		d.version = u.To
	}
	return u
}

func pidFileSays(path string) int {
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (d *upDaemon) logTail() string {
	b, _ := os.ReadFile(d.logFile)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return quote("its log", string(b))
}

// upAnswer is one answered connection: its version and pid, and when it
// was opened and answered (monotonic).
type upAnswer struct {
	version          string
	pid              int
	opened, answered time.Duration
}

type upgradeLoad struct {
	mu       sync.Mutex
	answers  []upAnswer
	failed   int
	first    string
	more     chan struct{} // a token after each answer
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

var upAnswerRE = regexp.MustCompile(`^(v\d+) (\d+)\n$`)

// startUpgradeLoad runs upgradeConns loops of connections to port until
// stopped or deadline.
func startUpgradeLoad(port int, deadline time.Time) *upgradeLoad {
	l := &upgradeLoad{more: make(chan struct{}, 1), stop: make(chan struct{})}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for range upgradeConns {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				a, err := askVersion(addr, deadline)
				l.mu.Lock()
				if err != nil {
					l.failed++
					if l.first == "" {
						l.first = err.Error()
					}
				} else {
					l.answers = append(l.answers, a)
				}
				l.mu.Unlock()
				select {
				case l.more <- struct{}{}:
				default:
				}
			}
		}()
	}
	return l
}

// askVersion makes one connection and reads its one line, at most 256
// bytes.
func askVersion(addr string, deadline time.Time) (upAnswer, error) {
	a := upAnswer{opened: monotonic()}
	c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return a, err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	b, err := io.ReadAll(io.LimitReader(c, 256))
	a.answered = monotonic()
	if err != nil {
		return a, err
	}
	m := upAnswerRE.FindStringSubmatch(string(b))
	if m == nil {
		return a, fmt.Errorf("answer %q, want \"<version> <pid>\"", b)
	}
	a.version = m[1]
	a.pid, _ = strconv.Atoi(m[2])
	return a, nil
}

// waitAnswers waits until n answers to connections opened after since
// came in.
func (l *upgradeLoad) waitAnswers(n int, since time.Duration, deadline time.Time) error {
	for {
		got := 0
		for _, a := range l.snapshot() {
			if a.opened > since {
				got++
			}
		}
		if got >= n {
			return nil
		}
		select {
		case <-l.more:
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("%d of %d answers before the deadline", got, n)
		}
	}
}

func (l *upgradeLoad) snapshot() []upAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.answers)
}

func (l *upgradeLoad) stopLoad() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// end stops the load and returns how many connections it made, how many
// failed, and the first failure.
func (l *upgradeLoad) end() (conns, failed int, first string) {
	l.stopLoad()
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answers) + l.failed, l.failed, l.first
}
