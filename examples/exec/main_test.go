package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// The program prints its pid, then becomes `uname -r` with the same pid.
func TestExec(t *testing.T) {
	bin := proctest.GoBuild(t, "exec", ".")
	want, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	stdout, stderr, err := proctest.Output(cmd)
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", stdout)
	}
	// The exec'd uname is the same process: the pid we started.
	if hello := fmt.Sprintf("Hello from process %d", cmd.Process.Pid); lines[0] != hello {
		t.Errorf("line 1 = %q, want %q", lines[0], hello)
	}
	if lines[1] != strings.TrimSpace(string(want)) {
		t.Errorf("line 2 = %q, want uname -r's %q", lines[1], strings.TrimSpace(string(want)))
	}
	if strings.Contains(stdout+stderr, "Bye") {
		t.Errorf("Bye was printed:\n%s%s", stdout, stderr)
	}
}
