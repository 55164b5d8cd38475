// Package bench measures how long a daemon takes to start with cdaemon and
// with the libraries that re-execute their own binary, and whether their
// launcher's exit means the daemon is ready. cmd/benchrun prints the table;
// README.md says what is measured and how far to trust it.
package bench

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Approach is one way of starting the same daemon.
type Approach struct {
	Key  string   // BENCH_APPROACH for cmd/benchdaemon; "ruby" runs daemon.rb
	Name string   // the row's label
	Env  []string // added to the launcher's environment
}

// Approaches are every approach, in table order; the first is the
// reference of the ratios.
var Approaches = []Approach{
	{Key: "cdaemon", Name: "(1) cdaemon, `CDAEMON=1` (pre-runtime, no exec)", Env: []string{"CDAEMON=1"}},
	{Key: "gowrap-constructor", Name: "(2) gowrap `Daemonize`, Strategy Constructor (exec in place)"},
	{Key: "gowrap-reexec", Name: "(3) gowrap `Daemonize`, Strategy Reexec"},
	{Key: "go-daemon", Name: "(4) sevlyar/go-daemon v0.1.6 `Reborn`"},
	{Key: "godaemon", Name: "(5) VividCortex/godaemon v1.0.0 `MakeDaemon`"},
	{Key: "ruby", Name: "(6) Ruby `Process.daemon` + TCPServer (non-Go reference)"},
}

//go:embed daemon.rb
var rubyDaemon []byte

// Config says what to run.
type Config struct {
	N          int           // measured runs per approach
	Warmup     int           // rounds run first and discarded (page cache, first exec)
	Timeout    time.Duration // bound of one run, from exec to "hello"
	Approaches []Approach
	DaemonBin  string          // cmd/benchdaemon, built by BuildDaemon
	Ruby       string          // the ruby interpreter; "" skips the Ruby row
	WorkDir    string          // run directories go here
	Progress   io.Writer       // one line per round; nil for none
	Stop       <-chan struct{} // closed to stop after the current run (nil: never)
}

// Sample is one start of a daemon. A start that does not finish within
// Config.Timeout is not a failure but a censored sample: its time is at
// least the timeout, and it counts as such in the percentiles.
type Sample struct {
	Ready        time.Duration // exec of the launcher until a connection read "hello"
	Exit         time.Duration // exec of the launcher until it exited
	ReadyTimeout bool          // no "hello" within the timeout; Ready is the timeout
	ExitTimeout  bool          // the launcher had not exited at the timeout; Exit is the timeout
	ReadyAtExit  bool          // a connection made when the launcher exited succeeded
	Starts       int           // program images started (init() runs, each after an execve)
	Err          error         // the start failed: the launcher or the daemon reported an error
}

// Result is every sample of one approach.
type Result struct {
	Approach Approach
	Samples  []Sample
	Skipped  string // why the approach did not run, if it did not
}

// BuildDaemon builds cmd/benchdaemon from the bench module in moduleDir
// into outDir, with the toolchain's defaults (cgo on, external linking:
// what the cdaemon constructor needs, and what `go build` gives any
// program importing net on a machine with a C compiler).
func BuildDaemon(moduleDir, outDir string) (string, error) {
	bin := filepath.Join(outDir, "benchdaemon")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/benchdaemon")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: build benchdaemon: %w\n%s", err, out)
	}
	return bin, nil
}

// Run starts every approach cfg.N times, round-robin: each round runs
// every approach once, beginning one further along each round, so slow
// phases of a noisy machine hit all approaches alike. The calling process
// becomes a child subreaper so that daemons are reparented to it and
// reaped after each run; Run leaves no process behind.
func Run(cfg Config) ([]Result, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("bench: prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	results := make([]Result, len(cfg.Approaches))
	var active []int
	for i, a := range cfg.Approaches {
		results[i].Approach = a
		if a.Key == "ruby" && cfg.Ruby == "" {
			results[i].Skipped = "not run: ruby not installed (`apt-get install -y ruby`)"
			continue
		}
		active = append(active, i)
	}
	script := filepath.Join(cfg.WorkDir, "daemon.rb")
	if err := os.WriteFile(script, rubyDaemon, 0o644); err != nil {
		return nil, err
	}
	run := 0
	for round := -cfg.Warmup; round < cfg.N; round++ {
		for k := range active {
			select {
			case <-cfg.Stop:
				return results, ErrStopped
			default:
			}
			i := active[(k+round+cfg.Warmup)%len(active)]
			dir := filepath.Join(cfg.WorkDir, "run"+strconv.Itoa(run))
			run++
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, err
			}
			s := runOnce(cfg, results[i].Approach, script, dir)
			if s.Err != nil && errors.Is(s.Err, errLeftBehind) {
				return nil, s.Err
			}
			if round >= 0 {
				results[i].Samples = append(results[i].Samples, s)
			}
			os.RemoveAll(dir)
		}
		if cfg.Progress != nil {
			if round < 0 {
				fmt.Fprintf(cfg.Progress, "bench: warm-up round %d/%d\n", round+cfg.Warmup+1, cfg.Warmup)
			} else if (round+1)%10 == 0 || round+1 == cfg.N {
				fmt.Fprintf(cfg.Progress, "bench: round %d/%d\n", round+1, cfg.N)
			}
		}
	}
	return results, nil
}

var errLeftBehind = errors.New("bench: processes left behind")

// ErrStopped is returned by Run, with the results so far, when Config.Stop
// was closed; every process started so far has been reaped.
var ErrStopped = errors.New("bench: stopped")

type exitInfo struct {
	at    time.Duration
	ready bool
	err   error
}

// runOnce starts the launcher of a in dir and measures one start. The
// port file appears through inotify, so the harness sleeps in poll(2)
// instead of spinning on the two cores the daemon needs.
func runOnce(cfg Config, a Approach, script, dir string) (s Sample) {
	portFile := filepath.Join(dir, "port")
	initLog := filepath.Join(dir, "inits")
	out, err := os.Create(filepath.Join(dir, "launcher.out"))
	if err != nil {
		return Sample{Err: err}
	}
	defer out.Close()

	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return Sample{Err: fmt.Errorf("inotify_init1: %w", err)}
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, dir, unix.IN_MOVED_TO); err != nil {
		return Sample{Err: fmt.Errorf("inotify_add_watch: %w", err)}
	}

	cmd := exec.Command(cfg.DaemonBin)
	if a.Key == "ruby" {
		cmd = exec.Command(cfg.Ruby, script)
	}
	cmd.Env = append(launcherEnv(os.Environ()), "BENCH_APPROACH="+a.Key,
		"BENCH_PORTFILE="+portFile, "BENCH_INITLOG="+initLog)
	cmd.Env = append(cmd.Env, a.Env...)
	// Files, not pipes: os/exec would wait for a daemon that kept them.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = dir

	deadline := time.Now().Add(cfg.Timeout)
	defer func() {
		if err := reapAll(portFile, time.Now().Add(5*time.Second)); err != nil {
			s.Err = err
			return
		}
		s.Starts = countLines(initLog)
		if s.Err != nil {
			b, _ := os.ReadFile(out.Name())
			if msg := strings.TrimSpace(string(b)); msg != "" {
				s.Err = fmt.Errorf("%w; launcher output: %s", s.Err, msg)
			}
		}
	}()

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Sample{Err: err}
	}
	exited := make(chan exitInfo, 1)
	go func() {
		err := cmd.Wait()
		at := time.Since(start)
		exited <- exitInfo{at: at, ready: answers(portFile), err: err}
	}()

	var ex *exitInfo
	s.Ready, s.Err = waitHello(in, portFile, start, deadline, exited, &ex)
	if errors.Is(s.Err, errTimeout) {
		s.Ready, s.ReadyTimeout, s.Err = cfg.Timeout, true, nil
	}
	if ex == nil {
		select {
		case e := <-exited:
			ex = &e
		case <-time.After(time.Until(deadline)):
			cmd.Process.Kill()
			<-exited
			ex = &exitInfo{at: cfg.Timeout}
			s.ExitTimeout = true
		}
	}
	s.Exit, s.ReadyAtExit = ex.at, ex.ready
	if ex.err != nil && s.Err == nil {
		s.Err = fmt.Errorf("launcher: %w", ex.err)
	}
	return s
}

var errTimeout = errors.New("no hello before the timeout")

// waitHello waits for the port file, then connects and reads "hello".
// It gives up early if the launcher fails.
func waitHello(in int, portFile string, start, deadline time.Time, exited <-chan exitInfo, ex **exitInfo) (time.Duration, error) {
	buf := make([]byte, 4096)
	for {
		if *ex == nil {
			select {
			case e := <-exited:
				*ex = &e
				if e.err != nil {
					return 0, fmt.Errorf("launcher: %w", e.err)
				}
			default:
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return 0, errTimeout
		}
		// Short slices only to notice a failed launcher: the port file
		// wakes the poll at once.
		ms := min(int(left/time.Millisecond)+1, 20)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(in), Events: unix.POLLIN}}, ms)
		if err != nil && err != unix.EINTR {
			return 0, fmt.Errorf("poll: %w", err)
		}
		if n <= 0 {
			continue
		}
		m, err := unix.Read(in, buf)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			return 0, fmt.Errorf("inotify read: %w", err)
		}
		if !hasName(buf[:m], filepath.Base(portFile)) {
			continue
		}
		port, _, err := readPortFile(portFile)
		if err != nil {
			return 0, err
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Until(deadline))
		if err != nil {
			return 0, err
		}
		c.SetReadDeadline(deadline)
		got, err := io.ReadAll(c)
		c.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, errTimeout
		}
		if err != nil {
			return 0, err
		}
		if string(got) != "hello\n" {
			return 0, fmt.Errorf("daemon answered %q", got)
		}
		return time.Since(start), nil
	}
}

// hasName reports whether the inotify events in b name name.
func hasName(b []byte, name string) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return false
		}
		if strings.TrimRight(string(b[unix.SizeofInotifyEvent:end]), "\x00") == name {
			return true
		}
		b = b[end:]
	}
	return false
}

// answers reports whether a client connecting now is served: the port is
// published and a TCP connection is accepted. This is the question a
// systemd Type=forking unit, or a script doing `start && use`, asks when
// the launcher exits.
func answers(portFile string) bool {
	port, _, err := readPortFile(portFile)
	if err != nil {
		return false
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func readPortFile(path string) (port string, pid int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", 0, fmt.Errorf("port file %q: want \"port pid\"", b)
	}
	pid, err = strconv.Atoi(f[1])
	return f[0], pid, err
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// launcherEnv is env without what would change the path a launcher takes:
// a supervisor's variables (gowrap would not daemonize under them), the
// daemon triggers and the peers' own markers.
func launcherEnv(env []string) []string {
	drop := []string{"NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
		"INVOCATION_ID", "WATCHDOG_PID", "WATCHDOG_USEC", "_GO_DAEMON",
		"__DAEMON_STAGE", "GOWRAP_REEXEC_CHILD"}
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
