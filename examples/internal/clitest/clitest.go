// Package clitest checks the command line of the example programs (issue
// 13): -h, --help and help print the usage on stdout and exit 0; a bad
// flag exits non-zero with a message on stderr that names the program and
// the flag as the user typed it.
//
// Every run is bounded: killed (by the pid the test started) after a
// deadline, and each of stdout and stderr is kept to its first 64 KiB.
package clitest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// maxOutput is how much of stdout and of stderr a run keeps.
const maxOutput = 64 << 10

// timeout bounds one run: a usage message takes milliseconds, so this
// only ends a program that started instead of printing its usage.
const timeout = 30 * time.Second

// capped keeps the first maxOutput bytes written to it and drops the rest
// (while still accepting it, so the program never blocks on a full pipe).
type capped struct {
	b         []byte
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := maxOutput - len(c.b); room < len(p) {
		c.b = append(c.b, p[:max(room, 0)]...)
		c.truncated = true
	} else {
		c.b = append(c.b, p...)
	}
	return len(p), nil
}

func (c *capped) String() string {
	if c.truncated {
		return string(c.b) + "\n[... cut at 64 KiB]"
	}
	return string(c.b)
}

// Run runs bin with args, stdin on /dev/null and an environment without
// CDAEMON* variables (nothing daemonizes), and returns what it wrote on
// stdout and stderr, and its exit code (-1 if it died of a signal).
func Run(t testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...) // kills cmd.Process: the pid it started
	cmd.Env = proctest.CleanEnv()
	cmd.WaitDelay = time.Second // a grandchild holding the pipes cannot hang Wait
	var o, e capped
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after %v (killed)\nstdout: %s\nstderr: %s",
			bin, strings.Join(args, " "), timeout, o.String(), e.String())
	}
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// CheckHelp runs bin with each of -h, --help and help: each must exit 0,
// print on stdout a usage that starts with "usage: "+prog and holds every
// string of want, and print nothing on stderr.
func CheckHelp(t *testing.T, bin, prog string, want ...string) {
	t.Helper()
	for _, h := range []string{"-h", "--help", "help"} {
		stdout, stderr, code := Run(t, bin, h)
		if code != 0 {
			t.Errorf("%s %s: exit %d, want 0\nstdout: %s\nstderr: %s", prog, h, code, stdout, stderr)
		}
		if !strings.HasPrefix(stdout, "usage: "+prog) {
			t.Errorf("%s %s: stdout %q does not start with %q", prog, h, stdout, "usage: "+prog)
		}
		for _, w := range want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s %s: usage %q does not mention %q", prog, h, stdout, w)
			}
		}
		if stderr != "" {
			t.Errorf("%s %s: stderr %q, want nothing", prog, h, stderr)
		}
	}
}

// CheckBadFlag runs bin with args, which hold a flag the program does not
// know: it must exit with code want (non-zero), print nothing on stdout,
// and on stderr a first line that starts with prog+": " and names flag as
// typed, followed by the usage.
func CheckBadFlag(t *testing.T, bin, prog, flag string, want int, args ...string) {
	t.Helper()
	stdout, stderr, code := Run(t, bin, args...)
	if code != want || code == 0 {
		t.Errorf("%s %s: exit %d, want %d", prog, strings.Join(args, " "), code, want)
	}
	if stdout != "" {
		t.Errorf("%s %s: stdout %q, want nothing", prog, strings.Join(args, " "), stdout)
	}
	first, rest, _ := strings.Cut(stderr, "\n")
	if !strings.HasPrefix(first, prog+": ") || !strings.Contains(first, flag) {
		t.Errorf("%s %s: stderr's first line %q, want %q naming %q", prog, strings.Join(args, " "), first, prog+": ...", flag)
	}
	if !strings.Contains(rest, "usage: "+prog) {
		t.Errorf("%s %s: stderr %q, want the usage after the message", prog, strings.Join(args, " "), stderr)
	}
}
