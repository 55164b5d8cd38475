package forkwait_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/cdaemon/cdaemon/examples/internal/clitest"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

func build(t *testing.T) string {
	t.Helper()
	return proctest.CBuild(t, "forkwait", "examples/forkwait/forkwait.c")
}

// run runs the program with stdout on a pipe, as `forkwait | cat` does.
func run(t *testing.T, bin string, args ...string) (pid int, lines []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, stderr, err := proctest.Output(cmd)
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr)
	}
	t.Logf("forkwait %s:\n%s", strings.Join(args, " "), stdout)
	return cmd.Process.Pid, strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
}

// find returns the index of the one line matching re, and its submatch.
func find(t *testing.T, lines []string, re string) (int, string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	at, sub := -1, ""
	for i, l := range lines {
		if m := rx.FindStringSubmatch(l); m != nil {
			if at >= 0 {
				t.Fatalf("two lines match %s: %q and %q", re, lines[at], l)
			}
			at, sub = i, m[1]
		}
	}
	if at < 0 {
		t.Fatalf("no line matches %s in %q", re, lines)
	}
	return at, sub
}

func count(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}

// checkFamily checks the parent, child and waiting lines, and returns how
// many times the first line was printed.
func checkFamily(t *testing.T, parent int, lines []string) int {
	t.Helper()
	p := regexp.QuoteMeta(fmt.Sprint(parent))
	waitAt, child := find(t, lines, `^I am process `+p+`, I am waiting for process (\d+)$`)
	if child == fmt.Sprint(parent) {
		t.Fatalf("the child has the parent's pid %d", parent)
	}
	c := regexp.QuoteMeta(child)
	// The child's parent is the process we started.
	childAt, _ := find(t, lines, `^I am process `+c+`, my parent is (`+p+`)$`)
	// The parent waited: its last line comes after the child's, and
	// names the child and its exit status.
	doneAt, _ := find(t, lines, `^I am process `+p+`, process `+c+` exited with status (0)$`)
	if doneAt != len(lines)-1 || doneAt < childAt || doneAt < waitAt {
		t.Errorf("the parent's last line is line %d of %d (child's: %d)", doneAt+1, len(lines), childAt+1)
	}
	first := fmt.Sprintf("I am process %d", parent)
	if lines[0] != first {
		t.Errorf("line 1 = %q, want %q", lines[0], first)
	}
	return count(lines, first)
}

// Flushed before fork, as Ruby's fork does: four lines, the first once.
func TestForkWait(t *testing.T) {
	pid, lines := run(t, build(t))
	if n := checkFamily(t, pid, lines); n != 1 || len(lines) != 4 {
		t.Errorf("first line printed %d times in %d lines, want once in 4", n, len(lines))
	}
}

// Not flushed: the child inherits the buffered first line and prints it
// again when it exits.
func TestForkWaitUnflushed(t *testing.T) {
	pid, lines := run(t, build(t), "--unflushed")
	if n := checkFamily(t, pid, lines); n != 2 || len(lines) != 5 {
		t.Errorf("first line printed %d times in %d lines, want twice in 5", n, len(lines))
	}
}

// -h, --help and help print the usage on stdout and exit 0 (and fork
// nothing); an unknown option or an extra argument exits 2 with a message
// on stderr that names it.
func TestHelpAndBadFlags(t *testing.T) {
	bin := build(t)
	clitest.CheckHelp(t, bin, "forkwait", "--unflushed")
	clitest.CheckBadFlag(t, bin, "forkwait", "'--bogus'", 2, "--bogus")
	clitest.CheckBadFlag(t, bin, "forkwait", "'extra'", 2, "--unflushed", "extra")
}
