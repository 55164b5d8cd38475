package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The program prints its pid, then becomes `uname -r` with the same pid.
func TestExec(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "exec")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", stdout.String())
	}
	// The exec'd uname is the same process: the pid we started.
	if hello := fmt.Sprintf("Hello from process %d", cmd.Process.Pid); lines[0] != hello {
		t.Errorf("line 1 = %q, want %q", lines[0], hello)
	}
	if lines[1] != strings.TrimSpace(string(want)) {
		t.Errorf("line 2 = %q, want uname -r's %q", lines[1], strings.TrimSpace(string(want)))
	}
	if strings.Contains(stdout.String()+stderr.String(), "Bye") {
		t.Errorf("Bye was printed:\n%s%s", stdout.String(), stderr.String())
	}
}
