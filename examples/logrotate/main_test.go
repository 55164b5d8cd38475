package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/examples/internal/clitest"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

// The test process is a child subreaper, so the daemon is reparented to it
// and reaped by it; the umask is fixed so that file modes are known.
func TestMain(m *testing.M) {
	unix.Umask(0o022)
	proctest.Main(m)
}

// watcher wakes up on changes in a directory (inotify): the test waits for
// the daemon's writes without sleeping.
type watcher struct{ f *os.File }

func watchDir(t *testing.T, dir string) *watcher {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MODIFY|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	w := &watcher{os.NewFile(uintptr(fd), "inotify")} // non-blocking: deadlines work
	t.Cleanup(func() { w.f.Close() })
	return w
}

// until returns once cond holds, checking it after each batch of events.
func (w *watcher) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // only bounds a hang
	buf := make([]byte, 64<<10)
	for !cond() {
		w.f.SetReadDeadline(deadline)
		if _, err := w.f.Read(buf); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

var lineRe = regexp.MustCompile(` msg=line .*\bn=(\d+)$`)

// numbers returns the numbered lines of a log file, complete lines only.
func numbers(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var ns []int
	for _, l := range strings.Split(string(b), "\n") {
		if m := lineRe.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			ns = append(ns, n)
		}
	}
	return ns
}

func TestLogRotate(t *testing.T) {
	bin := proctest.GoBuild(t, "logrotate", ".")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	pidPath := filepath.Join(dir, "app.pid")
	w := watchDir(t, dir)

	var out bytes.Buffer
	cmd := exec.Command(bin, "-log", logPath, "-pid", pidPath)
	cmd.Env = proctest.CleanEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil { // 0: the daemon called Ready
		t.Fatalf("launcher: %v\n%s", err, out.String())
	}
	pid := proctest.ReadPIDFile(t, pidPath)
	daemon := proctest.Adopt(t, pid)

	// Rotate ten times, logrotate's way: rename, then HUP. Each time wait
	// until the daemon writes a numbered line into the new file.
	const rotations = 10
	w.until(t, "a first line", func() bool { return len(numbers(t, logPath)) > 0 })
	for i := 1; i <= rotations; i++ {
		if err := os.Rename(logPath, fmt.Sprintf("%s.%d", logPath, i)); err != nil {
			t.Fatal(err)
		}
		if err := unix.Kill(pid, unix.SIGHUP); err != nil {
			t.Fatal(err)
		}
		w.until(t, fmt.Sprintf("a line in the new file after rotation %d", i),
			func() bool { return len(numbers(t, logPath)) > 0 })
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := daemon.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("after SIGTERM: wait status %#x, want exit 0", ws)
	}

	// Every number exactly once, in order within each file; files of mode
	// 0640 (the log's mode, less the umask 022).
	seen := map[int]int{} // number -> file index
	max := 0
	for i := 1; i <= rotations+1; i++ {
		path := fmt.Sprintf("%s.%d", logPath, i)
		if i == rotations+1 {
			path = logPath
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", path, fi.Mode().Perm())
		}
		ns := numbers(t, path)
		if len(ns) == 0 {
			t.Errorf("%s: no numbered line", path)
			continue
		}
		t.Logf("%s: %d lines, %v to %v", filepath.Base(path), len(ns), ns[0], ns[len(ns)-1])
		for j, n := range ns {
			if j > 0 && n <= ns[j-1] {
				t.Errorf("%s: %d after %d", path, n, ns[j-1])
			}
			if f, dup := seen[n]; dup {
				t.Errorf("line %d in file %d and file %d", n, f, i)
			}
			seen[n] = i
			if n > max {
				max = n
			}
		}
		if i > 1 {
			if b, _ := os.ReadFile(path); !bytes.Contains(b, []byte(" msg=\"reopened log\"")) {
				t.Errorf("%s: no \"reopened log\" record", path)
			}
		}
	}
	for n := 1; n <= max; n++ {
		if _, ok := seen[n]; !ok {
			t.Errorf("line %d is missing", n)
		}
	}
	if last := regexp.MustCompile(`msg=stopped .*\blast=(\d+)`).FindSubmatch(mustRead(t, logPath)); last == nil || string(last[1]) != strconv.Itoa(max) {
		t.Errorf("want a last record \"stopped\" with last=%d", max)
	}
	if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
		t.Errorf("pid file still there: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// -h, --help and help print the usage on stdout and exit 0; a flag the
// program does not know, or a bad value, exits 2 with a message on stderr
// that names the flag as typed. Nothing daemonizes.
func TestHelpAndBadFlags(t *testing.T) {
	bin := proctest.GoBuild(t, "logrotate", ".")
	clitest.CheckHelp(t, bin, "logrotate", "-log", "-pid", "-every", "SIGHUP")
	clitest.CheckBadFlag(t, bin, "logrotate", "-bogus", 2, "-bogus")
	clitest.CheckBadFlag(t, bin, "logrotate", "--bogus", 2, "--bogus")
	clitest.CheckBadFlag(t, bin, "logrotate", "--every", 2, "--every=soon")
	clitest.CheckBadFlag(t, bin, "logrotate", "-every", 2, "-every", "0s")
	clitest.CheckBadFlag(t, bin, "logrotate", `"extra"`, 2, "extra")
}
