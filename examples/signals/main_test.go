package main

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

func TestSignals(t *testing.T) {
	bin := proctest.GoBuild(t, "signals", ".")
	out, stderr, err := proctest.Output(exec.Command(bin))
	t.Logf("stdout:\n%sstderr:\n%s", out, stderr)

	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("want death by signal, got %v", err)
	}
	ws := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("wait status %v, want killed by SIGKILL", ws)
	}
	want := []string{
		"signal.Notify(c, SIGKILL): no error, and no effect",
		"rt_sigaction(SIGKILL, SIG_IGN): invalid argument (EINVAL)",
		"Trying to kill myself",
	}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	for _, never := range []string{"I should be alive", "I am not going to die!"} {
		if strings.Contains(out, never) {
			t.Errorf("%q was printed", never)
		}
	}
}
