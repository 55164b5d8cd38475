package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadFlags: every bad flag is refused before anything is built or
// run: exit 2, a message naming the flag, no results written.
func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "benchrun")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "results")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-rounds", "0"}, "-rounds 0: want at least 1"},
		{[]string{"-respawns", "-3"}, "-respawns -3: want at least 1"},
		{[]string{"-warmup", "-1"}, "-warmup -1"},
		{[]string{"-timeout", "0s"}, "-timeout 0s"},
		{[]string{"-only", "cdaemon,nosuch"}, `-only: no "nosuch"`},
		{[]string{"-experiments", "start,warp"}, `-experiments: no "warp"`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-rounds", "many"}, `invalid value "many"`},
	} {
		cmd := exec.Command(bin, append(tc.args, "-out", out)...)
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: exit %v, want 2\n%s", tc.args, err, b)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("%v: output lacks %q:\n%s", tc.args, tc.want, b)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("results written despite bad flags: %v", err)
	}
}
