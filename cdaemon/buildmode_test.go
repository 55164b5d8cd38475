package cdaemon_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// 7. The daemon sequence works whatever the executable looks like: the
// default build, a position-independent one and a fully static one. Each
// gets the core invariant checks of TestDaemonInvariants.
func TestBuildModes(t *testing.T) {
	for _, mode := range []string{"default", "pie", "static"} {
		t.Run(mode, func(t *testing.T) {
			bin := need(t, mode)[0]
			checkDaemon(t, bin, variant{name: mode, log: true})
		})
	}
}

// -linkmode=internal drops C constructors silently; with the trigger set,
// the Go side notices that the constructor did not run and refuses to go
// on in the foreground. Without the trigger the program runs as usual.
func TestInternalLinkmodeRefused(t *testing.T) {
	bin := need(t, "internal")[0]
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "d.pid")
	l := launch(t, launchSpec{bin: bin, mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath}})
	if code := l.wait(); code != 70 {
		t.Errorf("exit %d, want 70. Output:\n%s", code, l.stderr())
	}
	out := l.stderr()
	assertContains(t, "output", out, "constructor did not run", "linkmode=internal")
	if strings.Contains(out, "testdaemon: starting") {
		t.Errorf("the program ran in the foreground:\n%s", out)
	}
	if _, err := os.Lstat(pidPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a pid file was created: %v", err)
	}
	assertNoneRunning(t, bin)

	// Untriggered, the same binary works as a plain program.
	cmd := exec.Command(bin)
	cmd.Env = append(cleanEnv(), "CDTEST_MODE=envreport")
	out2, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out2), `"daemonized":false`) {
		t.Errorf("untriggered run: %v\n%s", err, out2)
	}
}

// Without cgo there is no constructor: the package must not build, and
// the error must say why.
func TestNoCgoBuildFails(t *testing.T) {
	env := append(cleanEnv(), "CGO_ENABLED=0")
	out, err := run(t.Context(), env, "go", "build", "-o", filepath.Join(t.TempDir(), "x.a"), ".")
	if err == nil {
		t.Fatalf("CGO_ENABLED=0 go build succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "cdaemon_requires_cgo") {
		t.Errorf("the build error does not mention cdaemon_requires_cgo:\n%s", out)
	}
}

// In -buildmode=c-shared the Go runtime starts from the library's
// constructor, on another thread, before cdaemon's: the package refuses to
// run there, loudly, whether or not the trigger is set.
func TestCSharedRefused(t *testing.T) {
	paths := need(t, "cshared")
	loader, lib := paths[0], paths[1]
	for _, c := range []struct {
		name string
		env  []string
		want []string
	}{
		{"untriggered", nil, []string{"-buildmode=c-shared is not supported"}},
		{"triggered", []string{"CDAEMON=1"}, []string{"threads", "c-shared"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(loader, lib)
			cmd.Env = append(cleanEnv(), c.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 70 {
				t.Errorf("loader exit %d, want 70:\n%s", code, out)
			}
			assertContains(t, "loader output", string(out), c.want...)
			if strings.Contains(string(out), "ping returned") {
				t.Errorf("the library's function ran:\n%s", out)
			}
		})
	}
}
