package cdaemonize_test

// End-to-end tests of the cdaemonize tool: real daemons, checked from
// outside through /proc. The test process is a child subreaper, so every
// daemon is reparented to it and reaped by it. Synchronisation is by
// process exit and FIFOs, never by sleeping.
//
// The test binary doubles as the sd_notify helper program: run with
// CDAEMONIZE_TEST_HELPER=notify, it sends READY=1 to $NOTIFY_SOCKET.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

const (
	exitUsage   = 100
	exitRunning = 75
	exitTimeout = 124
	exitNoProg  = 127
	// Only bounds how long a broken test hangs; nothing waits for it.
	hang = 60 * time.Second
)

func TestMain(m *testing.M) {
	if os.Getenv("CDAEMONIZE_TEST_HELPER") == "notify" {
		notifyHelper()
		return
	}
	proctest.Main(m, bins.Remove)
}

// notifyHelper is the program of TestNotifySocket: it waits for a line on
// the FIFO the test controls, sends READY=1 to $NOTIFY_SOCKET (an abstract
// socket: Go maps a leading '@' to the NUL byte) and then runs until
// SIGTERM.
func notifyHelper() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	f, err := os.Open(os.Getenv("CDAEMONIZE_TEST_FIFO"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	if _, err := bufio.NewReader(f).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "helper: fifo:", err)
		os.Exit(3)
	}
	f.Close()
	addr := &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err == nil {
		_, err = c.Write([]byte("READY=1"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: notify:", err)
		os.Exit(4)
	}
	<-stop
	os.Exit(0)
}

// bins builds the tool once for all the tests.
var bins proctest.Builds

// cdaemonize builds the tool with gcc from the sources (as the Makefile
// does, but into a temporary directory).
func cdaemonize(t *testing.T) string {
	t.Helper()
	return bins.C(t, "cdaemonize", "csrc/cdaemonize/cdaemonize.c", "csrc/*.c")
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs cdaemonize to its end and returns its exit status and output.
func run(t *testing.T, configure func(*exec.Cmd), args ...string) result {
	t.Helper()
	cmd := exec.Command(cdaemonize(t), args...)
	cmd.Env = proctest.CleanEnv()
	if configure != nil {
		configure(cmd)
	}
	stdout, stderr, err := proctest.Output(cmd)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("cdaemonize %q: %v", args, err)
	}
	return result{cmd.ProcessState.ExitCode(), stdout, stderr}
}

// stop sends TERM to a `sleep` daemon and checks that it died of it.
func stop(t *testing.T, d *proctest.Child) {
	if err := unix.Kill(d.PID, unix.SIGTERM); err != nil {
		t.Errorf("kill %d: %v", d.PID, err)
	}
	if ws := d.Wait(t); !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		t.Errorf("daemon %d: wait status %#x, want killed by SIGTERM", d.PID, ws)
	}
}

// waitSleep waits until pid runs `sleep 60`. The launcher may exit as soon
// as the exec passed its point of no return, before the kernel has set up
// the new command line, and nothing tells us when it has: /proc is polled.
func waitSleep(t *testing.T, pid int) {
	t.Helper()
	var cmdline string
	if !proctest.Eventually(hang, func() bool {
		cmdline = proctest.ReadFile(t, pid, "cmdline")
		return cmdline == "sleep\x0060\x00"
	}) {
		t.Fatalf("the daemon %d runs %q, want sleep 60", pid, cmdline)
	}
}

// checkDaemon checks a running `sleep 60` daemon from outside: its command
// line, its session, its working directory, its fds 0-2, and that the
// inherited file is closed.
func checkDaemon(t *testing.T, pid int, stdio [3]string, inherited string) {
	t.Helper()
	waitSleep(t, pid)
	proctest.CheckDetached(t, pid, stdio, inherited)
}

// startSleep starts `cdaemonize [args] -- sleep 60` with an inherited fd 3,
// expects exit 0 and returns the daemon's pid from the pid file.
func startSleep(t *testing.T, pidFile, inherited string, args ...string) *proctest.Child {
	t.Helper()
	f, err := os.Create(inherited)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	argv := append(append([]string{"-p", pidFile}, args...), "--", "sleep", "60")
	r := run(t, func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} }, argv...) // fd 3, inheritable
	if r.code != 0 {
		t.Fatalf("cdaemonize %q: exit %d\n%s", argv, r.code, r.stderr)
	}
	return proctest.Adopt(t, proctest.ReadPIDFile(t, pidFile))
}

// The daemon is `sleep` itself (exec'd in the daemon): the pid file holds
// its pid; fds 0-2 are /dev/null; a second start fails with 75.
func TestSleep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "sleep.pid")
	inherited := filepath.Join(dir, "inherited")
	d := startSleep(t, pidFile, inherited)
	checkDaemon(t, d.PID, [3]string{"/dev/null", "/dev/null", "/dev/null"}, inherited)

	// Already running: decided by the pid file's lock, which sleep holds.
	r := run(t, nil, "-p", pidFile, "--", "sleep", "60")
	if r.code != exitRunning || !strings.Contains(r.stderr, fmt.Sprintf("cdaemonize: already running (pid %d", d.PID)) {
		t.Errorf("second start: exit %d, stderr %q; want %d naming pid %d", r.code, r.stderr, exitRunning, d.PID)
	}
	stop(t, d)
}

// With -l, stdout and stderr are the log file.
func TestSleepLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "sleep.log")
	inherited := filepath.Join(dir, "inherited")
	d := startSleep(t, filepath.Join(dir, "sleep.pid"), inherited, "-l", log)
	checkDaemon(t, d.PID, [3]string{"/dev/null", log, log}, inherited)
	stop(t, d)
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-x", "--", "true"},
		{"--bogus", "--", "true"},
		{"-t", "5", "--", "true"}, // a duration needs a unit
		{"-m", "999", "--", "true"},
		{"--notify=2", "--", "true"},
		{"-p"},
		{},
		{"--"},
		{"-p", "/tmp/x.pid", "--"},
	} {
		r := run(t, nil, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "usage: cdaemonize") || r.stdout != "" {
			t.Errorf("cdaemonize %q: exit %d, stdout %q, stderr %q; want %d and the usage on stderr",
				args, r.code, r.stdout, r.stderr, exitUsage)
		}
	}
}

// A CDAEMON_* variable in cdaemonize's own environment is not its
// business (the daemon never sees it: the sequence scrubs them): a stray,
// even a bad one, does not make a good -t or -m a usage error.
func TestStrayVariable(t *testing.T) {
	t.Parallel()
	stray := func(c *exec.Cmd) { c.Env = append(c.Env, "CDAEMON_FOO=bad", "CDAEMON_TIMEOUT=x") }
	r := run(t, stray, "-t", "10s", "-m", "027", "--", "true")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("exit %d, stderr %q; want 0 and nothing said", r.code, r.stderr)
	}
}

// -m and -t accept exactly what CDAEMON_UMASK and CDAEMON_TIMEOUT accept:
// each value goes to cdaemonize and to the library's parser of the
// variable (cdaemon.ParseEnv), and both must agree with the table. Not
// parallel: the variable is set in this process for ParseEnv.
func TestOptionGrammar(t *testing.T) {
	for _, c := range []struct {
		flag, variable, value string
		ok                    bool
	}{
		{"-m", "CDAEMON_UMASK", "027", true},
		{"-m", "CDAEMON_UMASK", "0", true},
		{"-m", "CDAEMON_UMASK", "0777", true},
		{"-m", "CDAEMON_UMASK", "777", true},
		{"-m", "CDAEMON_UMASK", "999", false},
		{"-m", "CDAEMON_UMASK", "1000", false},
		{"-m", "CDAEMON_UMASK", "00777", false},
		{"-m", "CDAEMON_UMASK", "+7", false},
		{"-m", "CDAEMON_UMASK", " 7", false},
		{"-m", "CDAEMON_UMASK", "-0", false},
		{"-m", "CDAEMON_UMASK", "0x7", false},
		{"-m", "CDAEMON_UMASK", "", false},
		{"-t", "CDAEMON_TIMEOUT", "10s", true},
		{"-t", "CDAEMON_TIMEOUT", "1m30s", true},
		{"-t", "CDAEMON_TIMEOUT", "1.5s", true},
		{"-t", "CDAEMON_TIMEOUT", "500ms", true},
		{"-t", "CDAEMON_TIMEOUT", "5", false},
		{"-t", "CDAEMON_TIMEOUT", "0s", false},
		{"-t", "CDAEMON_TIMEOUT", "-1s", false},
		{"-t", "CDAEMON_TIMEOUT", "1 s", false},
		{"-t", "CDAEMON_TIMEOUT", "", false},
	} {
		r := run(t, nil, c.flag, c.value, "--", "true")
		tool := r.code == 0
		if !tool && (r.code != exitUsage || !strings.Contains(r.stderr, fmt.Sprintf("%q", c.value))) {
			t.Errorf("%s %q: exit %d, stderr %q; want 0, or %d naming the value", c.flag, c.value, r.code, r.stderr, exitUsage)
		}
		os.Setenv(c.variable, c.value)
		_, _, err := cdaemon.ParseEnv()
		os.Unsetenv(c.variable)
		variable := err == nil
		if tool != c.ok || variable != c.ok {
			t.Errorf("%q: cdaemonize %s accepts it: %v; %s accepts it: %v (%v); want %v for both",
				c.value, c.flag, tool, c.variable, variable, err, c.ok)
		}
	}
}

// anyPID is a pid in a message, which the table of messages shows as N.
var anyPID = regexp.MustCompile(`\(pid \d+\)`)

// Every message names the tool and the option as the user typed it, never
// the CDAEMON_* variable the constructor reads (issue 13): a user who
// typed -u looks for -u. The library's checks run with the tool's names.
func TestMessagesNameTheOption(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifoPath := filepath.Join(dir, "log.fifo")
	proctest.Mkfifo(t, fifoPath)
	same := filepath.Join(dir, "same")
	for _, c := range []struct {
		args []string
		code int
		want string // the whole first line
	}{
		{[]string{"-u", "cdaemonize-no-such-user", "--", "true"}, 64, `cdaemonize: -u "cdaemonize-no-such-user": no such user`},
		{[]string{"--user", "cdaemonize-no-such-user", "--", "true"}, 64, `cdaemonize: --user "cdaemonize-no-such-user": no such user`},
		{[]string{"--user=54321", "--", "true"}, 64, `cdaemonize: --user "54321": no such user in the passwd database; a number alone needs -g too`},
		{[]string{"-g", "cdaemonize-no-such-group", "--", "true"}, 64, `cdaemonize: -g "cdaemonize-no-such-group": no such group`},
		{[]string{"-c", dir + "/absent", "--", "true"}, 64, `cdaemonize: -c "` + dir + `/absent": working directory: No such file or directory`},
		{[]string{"--chdir=" + dir + "/absent", "--", "true"}, 64, `cdaemonize: --chdir "` + dir + `/absent": working directory: No such file or directory`},
		{[]string{"-l", fifoPath, "--", "true"}, 73, `cdaemonize: -l "` + fifoPath + `": ` + fifoPath + ` is a FIFO, not a regular file`},
		{[]string{"--pidfile", dir, "--", "true"}, 73, `cdaemonize: --pidfile "` + dir + `": ` + dir + `: open pid file: Is a directory`},
		{[]string{"-p", same, "--log", same, "--", "true"}, 73, `cdaemonize: -p "` + same + `": ` + same + ` is the log file (--log)`},
		{[]string{"-m", "8", "--", "true"}, exitUsage, `cdaemonize: -m "8": want an octal mode from 000 to 777, e.g. 027`},
		{[]string{"--timeout=5", "--", "true"}, exitUsage, `cdaemonize: --timeout "5": want a positive duration such as 10s, 500ms or 1m30s`},
		{[]string{"--notify=2", "--", "true"}, exitUsage, `cdaemonize: --notify "2": want an fd from 3 to 1023`},
		{[]string{"--init=1", "--", "true"}, exitUsage, `cdaemonize: --init takes no value`},
		{[]string{"--help=x"}, exitUsage, `cdaemonize: --help takes no value`},
		{[]string{"-u"}, exitUsage, `cdaemonize: -u needs a value`},
		{[]string{"--group"}, exitUsage, `cdaemonize: --group needs a value`},
		{[]string{"-x", "--", "true"}, exitUsage, `cdaemonize: unknown option -x`},
		{[]string{"--bogus", "--", "true"}, exitUsage, `cdaemonize: unknown option --bogus`},
		{[]string{"--", "cdaemonize-test-no-such-program"}, exitNoProg, `cdaemonize: exec cdaemonize-test-no-such-program: No such file or directory`},
		{[]string{"-I", "--", "cdaemonize-test-no-such-program"}, exitNoProg, `cdaemonize: exec cdaemonize-test-no-such-program: No such file or directory`},
		{[]string{"-I", "--notify", "--", "sh", "-c", "exit 3"}, 3, `cdaemonize: daemon (pid N) exited with status 3 before it was ready`},
	} {
		args := c.args
		r := run(t, nil, args...)
		first, _, _ := strings.Cut(r.stderr, "\n")
		first = anyPID.ReplaceAllString(first, "(pid N)")
		if r.code != c.code || first != c.want {
			t.Errorf("cdaemonize %q: exit %d, first line %q; want %d, %q", args, r.code, first, c.code, c.want)
		}
		if strings.Contains(r.stderr, "CDAEMON") {
			t.Errorf("cdaemonize %q names a variable the user never set:\n%s", args, r.stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--help", "-h"} {
		r := run(t, nil, flag)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%s: exit %d, stderr %q", flag, r.code, r.stderr)
		}
		for _, want := range []string{"NAME\n", "SYNOPSIS\n", "OPTIONS\n", "EXIT STATUS\n", "--notify", "-I, --init", "cdaemonize - "} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s: no %q in:\n%s", flag, want, r.stdout)
			}
		}
	}
}

func TestMissingProgram(t *testing.T) {
	t.Parallel()
	const name = "cdaemonize-test-no-such-program"
	r := run(t, nil, "--", name, "arg")
	if r.code != exitNoProg || !strings.Contains(r.stderr, name) {
		t.Errorf("exit %d, stderr %q; want %d naming %s", r.code, r.stderr, exitNoProg, name)
	}
}

// fifo makes a FIFO the test writes a line to when it wants the program
// to go on.
func fifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "go.fifo")
	proctest.Mkfifo(t, path)
	return path
}

// rendezvous opens the FIFO for writing, which completes once the program
// opened it for reading: from then on we know the program is running and
// waiting for us. It fails if cdaemonize exits first.
func rendezvous(t *testing.T, path string, exited <-chan error) *os.File {
	t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			f = nil
		}
		opened <- f
	}()
	unblock := func() { // lets a pending open complete
		if r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			if f := <-opened; f != nil {
				f.Close()
			}
			r.Close()
		}
	}
	select {
	case f := <-opened:
		if f == nil {
			t.Fatal("cannot open the FIFO")
		}
		return f
	case err := <-exited:
		unblock()
		t.Fatalf("cdaemonize exited before the program was ready: %v", err)
	case <-time.After(hang):
		unblock()
		t.Fatal("the program never opened the FIFO")
	}
	return nil
}

// stillRunning reports whether our child pid has not exited (a zombie we
// have not waited for yet shows state Z).
func stillRunning(t *testing.T, pid int) bool {
	return proctest.MustStat(t, pid).State != 'Z'
}

// startNotify starts cdaemonize --notify with flags and the program,
// which waits on the FIFO, then checks that cdaemonize is still waiting,
// lets the program notify, and expects exit 0.
func startNotify(t *testing.T, pidFile, fifoPath string, extraEnv, flags []string, program ...string) *proctest.Child {
	t.Helper()
	var stderr bytes.Buffer
	args := append(append([]string{"--notify", "-p", pidFile}, flags...), "--")
	cmd := exec.Command(cdaemonize(t), append(args, program...)...)
	cmd.Env = append(proctest.CleanEnv(), extraEnv...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		// Wait without reaping (WNOWAIT): the zombie stays for cmd.Wait.
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				exited <- err
				return
			}
		}
	}()
	w := rendezvous(t, fifoPath, exited)
	// The program runs and has not said it is ready: cdaemonize waits.
	if !stillRunning(t, cmd.Process.Pid) {
		t.Errorf("cdaemonize exited before the program notified")
	}
	if _, err := w.WriteString("go on\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cdaemonize --notify: %v\n%s", err, stderr.String())
	}
	return proctest.Adopt(t, proctest.ReadPIDFile(t, pidFile))
}

// --notify: the program writes a line to fd 3 (s6's notification-fd).
func TestNotifyFD(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "notify.pid")
	path := fifo(t)
	d := startNotify(t, pidFile, path, nil, nil,
		"sh", "-c", `read line < "$0" && echo ready >&3 && exec sleep 60`, path)
	// sh notified, then execs sleep in place: the pid in the pid file
	// becomes sleep.
	waitSleep(t, d.PID)
	stop(t, d)
}

// --notify: the program sends READY=1 to $NOTIFY_SOCKET (sd_notify(3)),
// an abstract socket whose name starts with '@'.
func TestNotifySocket(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "notify.pid")
	path := fifo(t)
	d := startNotify(t, pidFile, path,
		[]string{"CDAEMONIZE_TEST_HELPER=notify", "CDAEMONIZE_TEST_FIFO=" + path}, nil, self)
	environ := proctest.ReadFile(t, d.PID, "environ")
	if m := regexp.MustCompile(`(?:^|\x00)NOTIFY_SOCKET=([^\x00]*)`).FindStringSubmatch(environ); m == nil || !strings.HasPrefix(m[1], "@") {
		t.Errorf("the program's NOTIFY_SOCKET: %q, want an abstract socket (@...)", m)
	}
	if err := unix.Kill(d.PID, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := d.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("helper: wait status %#x, want exit 0", ws)
	}
}

// -t: a program that never notifies is killed when the time is up.
func TestTimeout(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "timeout.pid")
	r := run(t, nil, "--notify", "-t", "1s", "-p", pidFile, "--", "sleep", "60")
	if r.code != exitTimeout {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitTimeout, r.stderr)
	}
	m := regexp.MustCompile(`(?m)^cdaemonize: daemon \(pid (\d+)\) not ready`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("stderr %q: want the daemon's pid", r.stderr)
	}
	// Killed and reaped by cdaemonize: no such process any more.
	if _, err := os.Stat("/proc/" + m[1]); !os.IsNotExist(err) {
		t.Errorf("daemon %s still exists: %v", m[1], err)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

// --notify: the program starts a child and exits without ever notifying.
// cdaemonize fails, and, as the subreaper of the program's whole tree,
// kills and reaps the child before it exits: no orphan is left running.
func TestHostileNotifyOrphan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	childPIDFile := filepath.Join(dir, "child.pid")
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(cdaemonize(t), "--notify", "--",
		"sh", "-c", `sleep 100 & echo $! > "$0"; exit 0`, childPIDFile)
	cmd.Env = proctest.CleanEnv()
	cmd.Stdout, cmd.Stderr = out, out // a file: a leftover child cannot stall Wait
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(hang):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("cdaemonize still running after %v; killed it", hang)
	}
	b := make([]byte, 4096)
	n, _ := out.ReadAt(b, 0)
	stderr := string(b[:n])
	if code := cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("cdaemonize exited 0, want an error: the program exited without notifying. Output:\n%s", stderr)
	}
	pid := proctest.ReadPIDFile(t, childPIDFile)
	s, err := proctest.ReadStat(pid)
	if err != nil || s.Comm != "sleep" {
		return // gone (or the pid is somebody else's now)
	}
	if s.PPID == os.Getpid() {
		// Ours to reap (we are the subreaper cdaemonize left it to), and
		// to kill if it still runs.
		if s.State != 'Z' {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		defer proctest.Wait4(pid)
	}
	if s.State != 'Z' || s.PPID != os.Getpid() {
		t.Errorf("the program's child `sleep 100` (pid %d) is left behind after cdaemonize exited: %+v. Output:\n%s", pid, s, stderr)
	}
}

// reapStray kills (SIGKILL) the pids a failed test may leave behind, and
// reaps those that came to the test process, its subreaper.
func reapStray(pids ...int) {
	for _, pid := range pids {
		if s, err := proctest.ReadStat(pid); err != nil || s.Comm != "sleep" {
			continue // gone, or its pid is somebody else's now
		}
		_ = unix.Kill(pid, unix.SIGKILL)
		proctest.WaitExit(pid, hang)
		if s, err := proctest.ReadStat(pid); err == nil && s.PPID == os.Getpid() {
			_, _ = proctest.Wait4(pid)
		}
	}
}

// -I: the daemon stays behind as the library's init and the program runs
// as its child (issue 15), checked from outside: the pid file names the
// init (cdaemon-init, one thread, detached as any daemon);
// the program is its child, in a process group of its own; an orphan of
// the program's comes to the init, which reaps it; a second start finds
// the init running; TERM sent to the init kills the program (sleep has no
// handler) and the init exits with 128+15; the pid file goes with it.
func TestInit(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"-I", "--init"} {
		t.Run(flag, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "init.pid")
			// The subshell leaves `sleep 61` behind, orphaned; sh then
			// becomes `sleep 60`, the program.
			r := run(t, nil, flag, "-p", pidFile, "--", "sh", "-c", "(sleep 61 &); exec sleep 60")
			if r.code != 0 {
				t.Fatalf("cdaemonize %s: exit %d\n%s", flag, r.code, r.stderr)
			}
			init := proctest.Adopt(t, proctest.ReadPIDFile(t, pidFile))
			var program, orphan int
			if !proctest.Eventually(hang, func() bool {
				program, orphan = 0, 0
				for _, pid := range proctest.Children(init.PID) {
					switch proctest.ReadFile(t, pid, "cmdline") {
					case "sleep\x0060\x00":
						program = pid
					case "sleep\x0061\x00":
						orphan = pid
					}
				}
				return program > 0 && orphan > 0
			}) {
				t.Fatalf("the init %d has children %v, want sleep 60 (the program) and sleep 61 (its orphan)", init.PID, proctest.Children(init.PID))
			}
			t.Cleanup(func() { reapStray(program, orphan) })
			st := proctest.MustStatus(t, init.PID)
			is := proctest.MustStat(t, init.PID)
			if self := proctest.MustStat(t, os.Getpid()); st["Name"] != "cdaemon-init" || st["Threads"] != "1" || is.PPID != os.Getpid() ||
				is.Session == self.Session || is.Session == is.PID {
				t.Errorf("init %+v (%s, %s threads): want cdaemon-init, one thread, detached (a session of its own, not its leader), reparented to the test",
					is, st["Name"], st["Threads"])
			}
			if ps := proctest.MustStat(t, program); ps.PGRP != program || ps.Session != is.Session {
				t.Errorf("program %+v: want a process group of its own in the init's session", ps)
			}

			// The orphan ends: the init reaps it, no zombie is left.
			if err := unix.Kill(orphan, unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if !proctest.Eventually(hang, func() bool { _, err := proctest.ReadStat(orphan); return err != nil }) {
				t.Errorf("the orphan %d was not reaped: %+v", orphan, proctest.MustStat(t, orphan))
			}

			again := run(t, nil, flag, "-p", pidFile, "--", "true")
			if again.code != exitRunning || !strings.Contains(again.stderr, fmt.Sprintf("already running (pid %d", init.PID)) {
				t.Errorf("second start: exit %d, stderr %q; want %d naming the init %d", again.code, again.stderr, exitRunning, init.PID)
			}

			if err := unix.Kill(init.PID, unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := proctest.ExitCode(syscall.WaitStatus(init.Wait(t))); code != 128+int(unix.SIGTERM) {
				t.Errorf("the init exited %d, want %d (the program killed by TERM)", code, 128+int(unix.SIGTERM))
			}
			if _, err := proctest.ReadStat(program); err == nil {
				t.Errorf("the program %d outlived the init", program)
			}
			if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
				t.Errorf("pid file left after the init exited: %v", err)
			}
		})
	}
}

// -I with --notify: readiness from the program reaches cdaemonize through
// the init, on fd 3 (a line) or on NOTIFY_SOCKET (READY=1, relayed by the
// init from a socket of its own: the program's NOTIFY_SOCKET names it).
func TestInitNotify(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		env     func(fifo string) []string
		program func(fifo string) []string
		status  int // the init's, after TERM
	}{
		{"fd", func(string) []string { return nil },
			func(fifo string) []string {
				return []string{"sh", "-c", `read line < "$0" && echo ready >&3 && exec sleep 60`, fifo}
			}, 128 + int(unix.SIGTERM)},
		{"socket", func(fifo string) []string {
			return []string{"CDAEMONIZE_TEST_HELPER=notify", "CDAEMONIZE_TEST_FIFO=" + fifo}
		}, func(string) []string { return []string{self} }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "init.pid")
			path := fifo(t)
			init := startNotify(t, pidFile, path, c.env(path), []string{"-I"}, c.program(path)...)
			if st := proctest.MustStatus(t, init.PID); st["Name"] != "cdaemon-init" {
				t.Fatalf("the pid file names %d (%s), want the init", init.PID, st["Name"])
			}
			kids := proctest.Children(init.PID)
			if len(kids) != 1 {
				t.Fatalf("the init %d has children %v, want the program", init.PID, kids)
			}
			t.Cleanup(func() { reapStray(kids[0]) })
			if c.name == "socket" {
				environ := proctest.ReadFile(t, kids[0], "environ")
				if m := regexp.MustCompile(`(?:^|\x00)NOTIFY_SOCKET=([^\x00]*)`).FindStringSubmatch(environ); m == nil || !strings.HasPrefix(m[1], "@cdaemon-init/") {
					t.Errorf("the program's NOTIFY_SOCKET: %q, want the init's relay (@cdaemon-init/...)", m)
				}
			}
			if err := unix.Kill(init.PID, unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := proctest.ExitCode(syscall.WaitStatus(init.Wait(t))); code != c.status {
				t.Errorf("the init exited %d, want %d", code, c.status)
			}
		})
	}
}
