package main

// Upgrade in place (USR2, issue 16): the master execs the binary at its
// path, keeps its pid, its listeners and its workers, forks a new
// generation and QUITs the old one once the new one is ready; a new
// generation that fails is killed and the master returns to the old
// image. Two builds of testdata/versioned answer "<version> <pid>", so
// every answer says which code served it. Checked from outside: answers,
// /proc, the log, the pid file.

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// versioned builds testdata/versioned as version v (broken: failing
// before Ready; hang: never ready; hold: held before Ready by FIFOs;
// usr2: taking SIGUSR2 for itself), once per test binary.
func versioned(t *testing.T, v string, how string) string {
	t.Helper()
	x := "-X main.version=" + v
	switch how {
	case "broken", "hang", "hold", "usr2":
		x += " -X main." + how + "=1"
	case "":
	default:
		t.Fatalf("versioned: no such build %q", how)
	}
	return bins.Go(t, "versioned-"+v+how, "./testdata/versioned", "-ldflags="+x)
}

var installs atomic.Int32

// install copies the binary at from to a fresh directory under the
// builds' (so that the sweeps find its processes) as "app", and returns
// the daemon that runs it.
func install(t *testing.T, from string) *daemon {
	t.Helper()
	dir := filepath.Join(bins.Dir(), fmt.Sprintf("up%d", installs.Add(1)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sweep(); os.RemoveAll(dir) })
	d := &daemon{t: t, bin: filepath.Join(dir, "app"), dir: t.TempDir()}
	d.pidFile = filepath.Join(d.dir, "app.pid")
	d.logFile = filepath.Join(d.dir, "app.log")
	replace(t, from, d.bin)
	return d
}

// replace puts a copy of from at path the way a deploy does: written
// aside, then renamed over, so that the running image's file is not
// touched.
func replace(t *testing.T, from, path string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// answer is one connection of the load: the version and pid that served
// it, and when it was opened.
type answer struct {
	version string
	pid     int
	opened  time.Time
}

var answerRE = regexp.MustCompile(`^(v\d+) (\d+)\n$`)

// ask makes one connection and reads its one line (at most 256 bytes).
func ask(port int) (answer, error) {
	a := answer{opened: time.Now()}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		return a, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(io.LimitReader(c, 256))
	if err != nil {
		return a, err
	}
	m := answerRE.FindStringSubmatch(string(b))
	if m == nil {
		return a, fmt.Errorf("answer %q, want \"<version> <pid>\"", b)
	}
	a.version = m[1]
	a.pid, _ = strconv.Atoi(m[2])
	return a, nil
}

// load is a loopback client loop: conns connections at a time, each
// checked, until stopped or for at most limit.
type load struct {
	mu      sync.Mutex
	answers []answer
	fails   []error
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(port, conns int, limit time.Duration) *load {
	l := &load{stop: make(chan struct{})}
	end := time.Now().Add(limit)
	for i := 0; i < conns; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(end) {
				select {
				case <-l.stop:
					return
				default:
				}
				a, err := ask(port)
				l.mu.Lock()
				if err != nil {
					l.fails = append(l.fails, err)
				} else {
					l.answers = append(l.answers, a)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// count is how many answers came so far.
func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answers)
}

// waitCount waits until n more answers than now came in.
func (l *load) waitMore(t *testing.T, n int) {
	t.Helper()
	want := l.count() + n
	waitFor(t, fmt.Sprintf("%d answers", want), func() bool { return l.count() >= want })
}

// end stops the loop and fails the test for every failed connection.
func (l *load) end(t *testing.T) []answer {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	for i, err := range l.fails {
		if i < 5 {
			t.Errorf("connection failed: %v", err)
		}
	}
	if len(l.fails) > 0 {
		t.Errorf("%d of %d connections failed", len(l.fails), len(l.fails)+len(l.answers))
	}
	return l.answers
}

// control runs the installed binary's gowrap verb (status, upgrade) for
// the daemon's pid file and returns its exit status and output.
func (d *daemon) control(verb ...string) (int, string) {
	d.t.Helper()
	cmd := exec.Command(d.bin, verb...)
	cmd.Env = append(cleanEnv(), "CDAEMON_PIDFILE="+d.pidFile)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		d.t.Fatalf("%s %v: %v", d.bin, verb, err)
	}
	return 0, string(out)
}

// mark returns the log's length now: what is written from here on is
// log()[mark:].
func (d *daemon) mark() int { return len(d.log()) }

// waitLogAfter is waitLog on what the log got after mark.
func (d *daemon) waitLogAfter(mark int, re *regexp.Regexp) []string {
	d.t.Helper()
	var m []string
	waitFor(d.t, fmt.Sprintf("the log to match %q", re), func() bool {
		m = re.FindStringSubmatch(d.log()[mark:])
		return m != nil
	}, d.logTail)
	return m
}

// versionsOf asks n times and returns the versions that answered.
func versionsOf(t *testing.T, port, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		a, err := ask(port)
		if err != nil {
			t.Fatalf("connection: %v", err)
		}
		seen[a.version]++
	}
	return seen
}

// v1 answers under load while v2 is renamed over its path and `app
// upgrade` sends the master USR2: it exits 0 once v2 serves, no connection
// fails, the master keeps its pid, its pid file
// and its listener, and once the old generation is gone every answer
// comes from v2.
func TestUpgradeUnderLoad(t *testing.T) {
	v2 := versioned(t, "v2", "")
	d := install(t, versioned(t, "v1", ""))
	d.start("CDAEMON_WORKERS=2", "CDAEMON_SPARES=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	d.waitLog(regexp.MustCompile(`spare \(pid \d+\) waiting`))
	master := d.master
	_, inode := listenSocket(t, master)

	l := startLoad(d.port, 4, 10*time.Second)
	l.waitMore(t, 50)
	replace(t, v2, d.bin)
	mark := d.mark()
	sent := time.Now()
	code, out := d.control("upgrade")
	if code != 0 || !strings.Contains(out, "app: upgraded: generation 2 serves: 2 workers ready") {
		t.Errorf("app upgrade: exit %d, %q; want 0 and the new generation", code, out)
	}
	m := d.waitLogAfter(mark, regexp.MustCompile(`generation 2 serves: 2 workers ready (\d+) ms after USR2`))
	g := d.waitLogAfter(mark, regexp.MustCompile(`generation 1 gone, (\d+) ms after USR2`))
	gone := time.Now()
	t.Logf("USR2 to generation 2 ready: %s ms; to generation 1 gone: %s ms (master's clock); the test saw it after %v",
		m[1], g[1], gone.Sub(sent).Round(time.Millisecond))
	l.waitMore(t, 50)
	answers := l.end(t)

	after, before := 0, map[string]int{}
	for _, a := range answers {
		if a.opened.After(gone) {
			after++
			if a.version != "v2" {
				t.Errorf("answer from %s (pid %d) after the old generation was gone", a.version, a.pid)
			}
		} else {
			before[a.version]++
		}
	}
	t.Logf("%d answers under load: before the switch %v, after it %d (all v2)", len(answers), before, after)
	if before["v1"] == 0 || after == 0 {
		t.Errorf("answers before the switch %v, after it %d: want v1 before and some after", before, after)
	}

	if got := proctest.ReadPIDFile(t, d.pidFile); got != master {
		t.Errorf("pid file says %d after the upgrade, want the master %d", got, master)
	}
	if st, err := proctest.ReadStat(master); err != nil || st.PPID != testPID {
		t.Errorf("master %d after the upgrade: %+v %v", master, st, err)
	}
	if got := proctest.Title(master); got != "app: master (generation 2)" {
		t.Errorf("master title %q", got)
	}
	if _, got := listenSocket(t, master); got != inode {
		t.Errorf("master's listening socket is inode %s, was %s", got, inode)
	}
	// The lock held across the exec: the daemon's own status verb
	// verifies it through /proc (the lock and the fd).
	if code, out := d.control("status"); code != 0 || !strings.Contains(out, fmt.Sprintf("running (pid %d)", master)) {
		t.Errorf("app status: exit %d, %q", code, out)
	}
	ws := d.waitWorkers(3)
	for _, w := range ws {
		if title := proctest.Title(w); !strings.HasSuffix(title, "(generation 2)") {
			t.Errorf("worker %d after the upgrade: title %q", w, title)
		}
	}
	d.signal(unix.SIGTERM)
	d.stopped(ws)
}

// A v2 whose workers fail before Ready: the master kills them, execs v1's
// image again and v1 serves on, with no failed connection, and `app
// upgrade` exits 1 with v2's message; a worker
// killed after that is forked again from v1's code, although the file on
// disk is v2.
func TestUpgradeBrokenRollsBack(t *testing.T) {
	broken := versioned(t, "v2", "broken")
	d := install(t, versioned(t, "v1", ""))
	d.start("CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	d.waitWorkers(2)
	master := d.master

	l := startLoad(d.port, 4, 10*time.Second)
	l.waitMore(t, 50)
	replace(t, broken, d.bin)
	mark := d.mark()
	code, out := d.control("upgrade")
	if want := "versioned v2: broken build, refusing to start"; code != 1 ||
		!regexp.MustCompile(`(?m)^app: upgrade failed: generation 2: worker\[\d\] \(pid \d+\) exited with status 1 before it was ready: .*`+want).MatchString(out) {
		t.Errorf("app upgrade: exit %d, %q; want 1 and %q", code, out, want)
	}
	d.waitLogAfter(mark, regexp.MustCompile(`upgrade rolled back: generation 2: worker\[\d\] \(pid \d+\) exited with status 1 before it was ready: .*versioned v2: broken build, refusing to start; generation 1 serves on`))
	l.waitMore(t, 50)
	for _, a := range l.end(t) {
		if a.version != "v1" {
			t.Errorf("answer from %s (pid %d)", a.version, a.pid)
		}
	}
	if got := proctest.Title(master); got != "app: master" {
		t.Errorf("master title %q after the rollback", got)
	}

	ws := d.waitWorkers(2)
	mark = d.mark()
	if err := unix.Kill(ws[0], unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m := d.waitLogAfter(mark, regexp.MustCompile(`worker\[\d\] \(pid (\d+)\) ready`))
	pid, _ := strconv.Atoi(m[1])
	answered := map[int]string{}
	waitFor(t, "an answer from the new worker", func() bool {
		a, err := ask(d.port)
		if err != nil {
			t.Fatalf("connection: %v", err)
		}
		answered[a.pid] = a.version
		return answered[pid] != ""
	}, d.logTail)
	if answered[pid] != "v1" {
		t.Errorf("the worker forked after the rollback answers %s, want v1", answered[pid])
	}
	ws = d.waitWorkers(2)
	d.signal(unix.SIGTERM)
	d.stopped(ws)
}

// A new generation that is not ready within CDAEMON_TIMEOUT is killed and
// the old one serves on.
func TestUpgradeTimeoutRollsBack(t *testing.T) {
	hang := versioned(t, "v2", "hang")
	d := install(t, versioned(t, "v1", ""))
	d.start("CDAEMON_WORKERS=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "CDAEMON_TIMEOUT=2s")
	d.waitWorkers(1)
	replace(t, hang, d.bin)
	mark := d.mark()
	d.signal(unix.SIGUSR2)
	d.waitLogAfter(mark, regexp.MustCompile(`generation 2 failed: not ready within CDAEMON_TIMEOUT \(2000 ms\); killing its workers, back to generation 1`))
	d.waitLogAfter(mark, regexp.MustCompile(`upgrade rolled back: `))
	if seen := versionsOf(t, d.port, 10); seen["v1"] != 10 {
		t.Errorf("after the rollback: %v, want v1 only", seen)
	}
	ws := d.waitWorkers(1)
	d.signal(unix.SIGTERM)
	d.stopped(ws)
}

// The file is gone: the exec fails, the master says so and serves on, and
// `app upgrade` (run from a copy) reports it. A plain kill -USR2 works as
// well, and `app upgrade` of a daemon that is not running says so.
func TestUpgradeMissingFile(t *testing.T) {
	d := install(t, versioned(t, "v1", ""))
	if code, out := d.control("upgrade"); code != 7 || !strings.Contains(out, "app: not running") {
		t.Errorf("app upgrade with no daemon: exit %d, %q; want 7", code, out)
	}
	d.start("CDAEMON_WORKERS=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	ws := d.waitWorkers(1)
	ctl := d.bin + ".ctl"
	replace(t, d.bin, ctl)
	if err := os.Remove(d.bin); err != nil {
		t.Fatal(err)
	}
	mark := d.mark()
	cmd := exec.Command(ctl, "upgrade")
	cmd.Env = append(cleanEnv(), "CDAEMON_PIDFILE="+d.pidFile)
	out, err := cmd.CombinedOutput()
	if want := "app.ctl: upgrade failed: exec " + d.bin + ": No such file or directory"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("upgrade: %v, %q; want a failure and %q", err, out, want)
	}
	d.waitLogAfter(mark, regexp.MustCompile(`upgrade failed: exec `+regexp.QuoteMeta(d.bin)+`: No such file or directory; generation 1 serves on`))
	d.signal(unix.SIGUSR2)
	d.waitLogAfter(mark, regexp.MustCompile(`(?s)upgrade failed: exec .*upgrade failed: exec `))
	if seen := versionsOf(t, d.port, 5); seen["v1"] != 5 {
		t.Errorf("after the failed exec: %v, want v1 only", seen)
	}
	if got := d.workers(); len(got) != 1 || got[0] != ws[0] {
		t.Errorf("workers %v after the failed exec, want %v untouched", got, ws)
	}
	d.signal(unix.SIGTERM)
	d.stopped(ws)
}

// Under systemd (Type=notify-reload): the foreground master with a
// socket passed by LISTEN_FDS sends RELOADING=1 with MONOTONIC_USEC on
// USR2, then READY=1 once generation 2 serves, always from the same pid
// (MAINPID holds); the socket crosses the exec.
func TestUpgradeNotifiesSystemd(t *testing.T) {
	v2 := versioned(t, "v2", "")
	d := install(t, versioned(t, "v1", ""))
	a := startActivated(t, d.dir, d.bin, "CDAEMON_WORKERS=2")
	port, pid, output := a.port, a.pid, a.output
	readNotify := func() string { msg, _ := a.readNotify(); return msg }
	if got, want := readNotify(), fmt.Sprintf("READY=1\nMAINPID=%d", pid); got != want {
		t.Fatalf("first notification %q, want %q", got, want)
	}
	if seen := versionsOf(t, port, 5); seen["v1"] != 5 {
		t.Errorf("before the upgrade: %v", seen)
	}

	replace(t, v2, d.bin)
	var before, after unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
	if err := unix.Kill(pid, unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=(\d+)$`).FindStringSubmatch(readNotify())
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
	if m == nil {
		t.Fatalf("no RELOADING=1 with MONOTONIC_USEC after USR2\n%s", output())
	}
	// The master's clock counts whole ms: allow that much below.
	if usec, _ := strconv.ParseInt(m[1], 10, 64); usec < before.Nano()/1000-1000 || usec > after.Nano()/1000 {
		t.Errorf("MONOTONIC_USEC=%d, not between %d and %d", usec, before.Nano()/1000, after.Nano()/1000)
	}
	if got := readNotify(); got != "READY=1" {
		t.Errorf("after the upgrade %q, want READY=1\n%s", got, output())
	}
	// Until then an old worker, told to QUIT, may still take one.
	waitFor(t, "generation 1 gone", func() bool { return strings.Contains(output(), "generation 1 gone") }, output)
	if seen := versionsOf(t, port, 5); seen["v2"] != 5 {
		t.Errorf("after the upgrade: %v, want v2 only", seen)
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(); got != "STOPPING=1" {
		t.Errorf("notification after TERM %q, want STOPPING=1", got)
	}
	err := a.wait()
	if err != nil {
		t.Errorf("master after TERM: %v, want exit 0\n%s", err, output())
	}
}
