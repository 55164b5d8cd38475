package cdaemon_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cdaemon/cdaemon/internal/proctest"
	"golang.org/x/sys/unix"
)

// Ctrl-C (or TERM, HUP, QUIT) reaching the launcher while the daemon is
// not ready yet: no half-started daemon is left behind. The launcher kills
// it, says so, removes the pid file and exits 128+signal.
func TestLauncherInterruptedBeforeReady(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			gate := filepath.Join(dir, "gate.fifo")
			proctest.Mkfifo(t, gate)
			pidPath := filepath.Join(dir, "d.pid")
			l := launch(t, launchSpec{mode: "gate", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDTEST_GATE=" + gate}})
			r := l.report()
			if r.Phase != "waiting" {
				t.Fatalf("report %+v, want the daemon waiting at the gate", r)
			}
			if err := unix.Kill(l.pid(), sig); err != nil {
				t.Fatal(err)
			}
			if code := l.wait(); code != 128+int(sig) {
				t.Errorf("launcher exit %d, want %d. Output:\n%s", code, 128+int(sig), l.stderr())
			}
			assertContains(t, "launcher's stderr", l.stderr(),
				"got signal "+strconv.Itoa(int(sig)), "killed it (pid "+strconv.Itoa(r.PID)+")")
			// The launcher reaped it (it was the daemon's subreaper).
			assertGone(t, r.PID, "the daemon")
			if _, err := os.Lstat(pidPath); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pid file after the interrupted start: %v, want it removed", err)
			}
			assertNoneRunning(t, l.bin)
		})
	}
}
