package cdaemon_test

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// CDAEMON_USER drops privileges in the daemon before the Go runtime
// starts, after the pid file and the log file were opened as root: the
// daemon runs as the user with its groups, and still holds both files.
func TestPrivilegeDrop(t *testing.T) { checkPrivilegeDrop(t, testdaemon(t)) }

func checkPrivilegeDrop(t *testing.T, bin string) {
	if os.Getuid() != 0 {
		t.Skip("needs root to drop privileges")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	// Somewhere the dropped daemon can still reach to report: the test's
	// own temporary directories are private to root.
	dir, err := os.MkdirTemp("", "cdaemon-priv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	reports := newReportFIFO(t, dir)
	if err := os.Chmod(reports.path, 0o666); err != nil {
		t.Fatal(err)
	}
	pidPath, logPath := filepath.Join(dir, "d.pid"), filepath.Join(dir, "d.log")
	l := launch(t, launchSpec{bin: bin, mode: "serve", reports: reports, env: []string{
		"CDAEMON=1", "CDAEMON_USER=nobody", "CDAEMON_PIDFILE=" + pidPath, "CDAEMON_LOG=" + logPath,
	}})
	r := l.report()
	l.waitReady()
	if code := l.wait(); code != 0 {
		t.Fatalf("launcher exit %d: %s", code, l.stderr())
	}
	st := proctest.MustStatus(t, r.PID)
	uids, gids, groups := strings.Fields(st["Uid"]), strings.Fields(st["Gid"]), strings.Fields(st["Groups"])
	for _, u := range uids {
		if u != nobody.Uid {
			t.Errorf("Uid %v, want %s everywhere (real, effective, saved, fs)", uids, nobody.Uid)
			break
		}
	}
	for _, g := range gids {
		if g != nobody.Gid {
			t.Errorf("Gid %v, want %s everywhere", gids, nobody.Gid)
			break
		}
	}
	want, _ := nobody.GroupIds()
	if strings.Join(groups, " ") != strings.Join(want, " ") {
		t.Errorf("supplementary groups %v, want nobody's %v (not root's)", groups, want)
	}
	// Opened as root before the drop, held by the daemon after it.
	fds, err := proctest.FDs(r.PID)
	if err != nil {
		t.Fatal(err)
	}
	var havePID, haveLog bool
	for _, target := range fds {
		havePID = havePID || target == pidPath
		haveLog = haveLog || target == logPath
	}
	if !havePID || !haveLog {
		t.Errorf("fds %v: want the pid file and the log held", fds)
	}
	if got := pidFromFile(t, pidPath); got != r.PID {
		t.Errorf("pid file holds %d, want %d", got, r.PID)
	}
	// The daemon serves as nobody.
	if got := ping(t, r.Port); got != r.PID {
		t.Errorf("ping answered by %d, want %d", got, r.PID)
	}
}
