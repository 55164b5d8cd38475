package main

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

func TestSpawn(t *testing.T) {
	bin := proctest.GoBuild(t, "spawn", ".")
	cmd := exec.Command(bin)
	out, stderr, err := proctest.Output(cmd)
	if err != nil {
		t.Fatalf("%v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	t.Logf("output:\n%s", out)
	self := strconv.Itoa(cmd.Process.Pid)

	// One pattern per line, in order; the submatches are checked below.
	want := []string{
		`^system: hello from sh, pid (\d+)$`,
		`^system: exit status 3$`,
		`^backticks: captured "Hello from backticks\\n"$`,
		`^popen: read 3 lines: one, two, three$`,
		`^popen3: tr answered "HELLO FROM POPEN3\\n"$`,
		`^spawn: started process (\d+), not waiting yet$`,
		`^spawn: process (\d+) exited with status 5$`,
		`^exec: process (\d+) becomes sh$`,
		`^exec: sh is process (\d+)$`,
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d", len(lines), len(want))
	}
	m := make([][]string, len(want))
	for i, re := range want {
		if m[i] = regexp.MustCompile(re).FindStringSubmatch(lines[i]); m[i] == nil {
			t.Errorf("line %d = %q, want match for %s", i+1, lines[i], re)
		}
	}
	if t.Failed() {
		return
	}
	// system ran a child: another process.
	if m[0][1] == self {
		t.Errorf("system's sh has our pid %s", self)
	}
	// spawn names the same child when starting it and when reaping it.
	if m[5][1] != m[6][1] || m[5][1] == self {
		t.Errorf("spawn: started %s, reaped %s (we are %s)", m[5][1], m[6][1], self)
	}
	// exec keeps the pid: before and after are the process we started.
	if m[7][1] != self || m[8][1] != self {
		t.Errorf("exec: before %s, after %s, want both %s", m[7][1], m[8][1], self)
	}
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}
}
