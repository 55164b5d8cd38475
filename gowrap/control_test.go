package gowrap_test

// Acceptance 5: Control's init-script commands against real daemons: the
// messages, the LSB exit statuses, one daemon at a time, stale pid files,
// escalation to KILL, and usage errors.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/gowrap"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

// ctlEnv is the environment of the app in Control mode with a pid file.
func ctlEnv(h *harness, pidFile string, extra ...string) []string {
	return h.env(append([]string{"GWTEST_MODE=ctl", "GWTEST_PIDFILE=" + pidFile, "GWTEST_ONRELOAD=1"}, extra...)...)
}

// ctl runs one command and checks its status and that its output holds
// want.
func ctl(t *testing.T, h *harness, env []string, code int, want string, args ...string) string {
	t.Helper()
	got, out := h.run(env, args...)
	if got != code || !strings.Contains(out, want) {
		t.Fatalf("%s: exit %d, want %d with %q. Output:\n%s", strings.Join(args, " "), got, code, want, out)
	}
	return out
}

// startCtl runs `app start` and returns the daemon, adopted.
func startCtl(t *testing.T, h *harness, env []string) (report, *kid) {
	t.Helper()
	l := h.start(env, "start")
	r := h.expect(l, "ready")
	l.waitCode(0)
	if r.Mode != "pre-runtime" || r.PID == l.pid() || r.LauncherPID != l.pid() {
		t.Errorf("daemon pid %d mode %q launcher %d; want a pre-runtime daemon launched by %d", r.PID, r.Mode, r.LauncherPID, l.pid())
	}
	return r, h.adopt(r.PID)
}

func TestControlLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pidFile := filepath.Join(h.dir, "app.pid")
	env := ctlEnv(h, pidFile)

	ctl(t, h, env, gowrap.StatusNotRunning, "gwtestapp: not running\n", "status")
	r, k := startCtl(t, h, env)
	if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
		t.Fatalf("pid file holds %d, want the daemon %d", got, r.PID)
	}

	// A second start finds the daemon by its lock and starts nothing.
	ctl(t, h, env, 0, fmt.Sprintf("gwtestapp: already running (pid %d)\n", r.PID), "start")
	if pids := appProcesses(h.tag); len(pids) != 1 || pids[0] != r.PID {
		t.Errorf("processes of the app %v, want only the daemon %d", pids, r.PID)
	}

	ctl(t, h, env, gowrap.StatusRunning, fmt.Sprintf("gwtestapp: running (pid %d)\n", r.PID), "status")

	ctl(t, h, env, 0, fmt.Sprintf("gwtestapp: sent HUP to pid %d\n", r.PID), "reload")
	if rr := h.expect(nil, "reloaded"); rr.PID != r.PID || rr.Count != 1 {
		t.Errorf("reload hook ran in pid %d, count %d; want %d, 1", rr.PID, rr.Count, r.PID)
	}

	ctl(t, h, env, 0, fmt.Sprintf("gwtestapp: stopped (pid %d, terminated)\n", r.PID), "stop")
	if code := k.wait(t); code != 0 {
		t.Errorf("daemon exited %d after stop, want 0", code)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file after stop: %v, want it removed", err)
	}

	ctl(t, h, env, gowrap.StatusNotRunning, "gwtestapp: not running\n", "status")
	ctl(t, h, env, gowrap.ExitNotRunning, "gwtestapp: not running (no pid file)\n", "reload")
	ctl(t, h, env, 0, "gwtestapp: not running\n", "stop")
}

// A pid file nobody holds: status says so (1); stop removes it; start
// takes it over.
func TestControlStalePIDFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pidFile := filepath.Join(h.dir, "app.pid")
	env := ctlEnv(h, pidFile)
	stale := func() {
		t.Helper()
		if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", proctest.DeadPID(t))), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	stale()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	dead := strings.TrimSpace(string(b))
	why := fmt.Sprintf("pid file %s names pid %s, which does not hold it (dead, or not the daemon)", pidFile, dead)
	ctl(t, h, env, gowrap.StatusDeadPIDFile, "gwtestapp: not running; "+why+"\n", "status")
	ctl(t, h, env, 0, "gwtestapp: not running ("+why+")\n", "stop")
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("stale pid file after stop: %v, want it removed", err)
	}
	ctl(t, h, env, gowrap.StatusNotRunning, "gwtestapp: not running\n", "status")

	stale()
	r, k := startCtl(t, h, env)
	if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
		t.Errorf("pid file holds %d after start over a stale one, want %d", got, r.PID)
	}
	ctl(t, h, env, gowrap.StatusRunning, fmt.Sprintf("running (pid %d)", r.PID), "status")
	stopDaemon(t, k)
}

// A daemon that ignores TERM is killed after -timeout, or after
// Options.KillAfter when no -timeout is given.
func TestControlStopEscalatesToKill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"stop", "-timeout", "1s"}},
		{"KillAfter", []string{"GWTEST_KILLAFTER=1s"}, []string{"stop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			pidFile := filepath.Join(h.dir, "app.pid")
			env := ctlEnv(h, pidFile, append(tc.env, "GWTEST_IGNORETERM=1")...)
			r, k := startCtl(t, h, env)
			ign, err := proctest.MustStatus(t, r.PID).Mask("SigIgn")
			if err != nil {
				t.Fatal(err)
			}
			if ign&(1<<(unix.SIGTERM-1)) == 0 {
				t.Fatalf("daemon %d does not ignore TERM (SigIgn %#x)", r.PID, ign)
			}
			out := ctl(t, h, env, 0, fmt.Sprintf("gwtestapp: killed (pid %d)\n", r.PID), tc.args...)
			if want := fmt.Sprintf("gwtestapp: pid %d still running 1s after terminated; sending KILL", r.PID); !strings.Contains(out, want) {
				t.Errorf("stop does not say %q:\n%s", want, out)
			}
			if code := k.wait(t); code != 128+int(unix.SIGKILL) {
				t.Errorf("daemon status %d, want %d (killed by KILL)", code, 128+int(unix.SIGKILL))
			}
			if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
				t.Errorf("pid file after the KILL: %v, want it removed", err)
			}
		})
	}
}

// restart stops the daemon and starts a new one: exactly one runs after.
func TestControlRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pidFile := filepath.Join(h.dir, "app.pid")
	env := ctlEnv(h, pidFile)
	old, oldKid := startCtl(t, h, env)

	p := h.start(env, "restart")
	code := p.wait()
	if c := oldKid.wait(t); c != 0 {
		t.Errorf("old daemon %d exited %d, want 0", old.PID, c)
	}
	if code != 0 {
		// Once seen: 143, the image exec'd by start ran "restart" again
		// and its stop TERMed itself.
		t.Fatalf("restart exited %d, want 0. Output:\n%s", code, p.output())
	}
	if !strings.Contains(p.output(), fmt.Sprintf("stopped (pid %d, terminated)", old.PID)) {
		t.Errorf("restart output does not say it stopped %d:\n%s", old.PID, p.output())
	}
	// The old daemon reports "stopping" on the same FIFO before the new
	// one reports "ready".
	r := h.next(nil)
	for r.Event == "stopping" && r.PID == old.PID {
		r = h.next(nil)
	}
	if r.Event != "ready" {
		t.Fatalf("report %q, want the new daemon's \"ready\"", r.raw)
	}
	k := h.adopt(r.PID)
	if r.PID == old.PID {
		t.Errorf("the new daemon has the old pid %d", r.PID)
	}
	if pids := appProcesses(h.tag); len(pids) != 1 || pids[0] != r.PID {
		t.Errorf("processes of the app after restart %v, want only %d", pids, r.PID)
	}
	if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
		t.Errorf("pid file holds %d, want the new daemon %d", got, r.PID)
	}
	stopDaemon(t, k)
}

// Every bad invocation gets the usage and exit status 2 (LSB: invalid
// arguments), and starts nothing; a verb without the pid file it needs is
// a configuration fault, 64 as everywhere.
func TestControlUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "gwtestapp: missing command"},
		{[]string{"bogus"}, `gwtestapp: unknown command "bogus"`},
		{[]string{"stop", "-bogus"}, "gwtestapp: stop: flag provided but not defined: -bogus"},
		{[]string{"start", "-graceful"}, "gwtestapp: start: flag provided but not defined: -graceful"},
		{[]string{"status", "extra"}, `gwtestapp: status: unexpected argument "extra"`},
		{[]string{"stop", "-timeout", "0"}, "gwtestapp: stop: -timeout 0s: want a positive duration"},
		{[]string{"restart", "-timeout", "-1s"}, "gwtestapp: restart: -timeout -1s: want a positive duration"},
		{[]string{"stop", "-timeout", "abc"}, `gwtestapp: stop: invalid value "abc" for flag -timeout`},
	} {
		t.Run(strings.Join(append([]string{"args"}, tc.args...), "_"), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			out := ctl(t, h, ctlEnv(h, filepath.Join(h.dir, "app.pid")), gowrap.ExitBadArgs, tc.msg, tc.args...)
			if !strings.Contains(out, "usage: gwtestapp start | stop [-graceful] [-timeout D] |") {
				t.Errorf("no usage message:\n%s", out)
			}
			h.noneLeft()
		})
	}
	// status, stop and reload need a pid file to find the daemon.
	for _, cmd := range []string{"status", "stop", "reload", "restart"} {
		t.Run("nopidfile_"+cmd, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			ctl(t, h, h.env("GWTEST_MODE=ctl"), gowrap.ExitConfig, "gwtestapp: "+cmd+" needs a pid file", cmd)
		})
	}
}

// One condition, one status (issue 12): a user that does not exist is a
// bad configuration, 64, whether the constructor meets it (start, which
// execs into it) or Go does (run, in the foreground), with the same words.
func TestControlBadConfigOneCode(t *testing.T) {
	t.Parallel()
	for _, verb := range []string{"start", "run"} {
		t.Run(verb, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			pidFile := filepath.Join(h.dir, "app.pid")
			ctl(t, h, ctlEnv(h, pidFile, "CDAEMON_USER=nosuchuser"), gowrap.ExitConfig,
				`CDAEMON_USER="nosuchuser": no such user`, verb)
			h.noneLeft()
			if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file after the refused %s: %v, want none", verb, err)
			}
		})
	}
}

// Help is asked for, not a mistake: usage on stdout, exit 0, nothing
// started (issue 13).
func TestControlHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}, {"stop", "-h"}, {"restart", "--help"}} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			p := h.startWith(func(c *exec.Cmd) { c.Stderr = nil }, ctlEnv(h, filepath.Join(h.dir, "app.pid")), app(t), args...)
			p.waitCode(0)
			out := p.output()
			if !strings.HasPrefix(out, "usage: gwtestapp start | stop [-graceful] [-timeout D] |") || !strings.Contains(out, "help     this text") {
				t.Errorf("%v: stdout is not the usage:\n%s", args, out)
			}
			h.noneLeft()
		})
	}
}
