package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSignals(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "signals")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	t.Logf("stdout:\n%sstderr:\n%s", out, stderr.String())

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
