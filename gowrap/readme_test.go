package gowrap_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// TestReadmeQuickStart pastes the README's Go quick start into a new
// module (using this checkout through a replace directive), builds it and
// runs `app start`, `app status`, `app stop`, as a new user would.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	root := proctest.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Quick start (Go)")
	if !ok {
		t.Fatal("README has no Quick start (Go) section")
	}
	_, code, ok := strings.Cut(after, "```go\n")
	if !ok {
		t.Fatal("no Go code block in the quick start")
	}
	code, _, _ = strings.Cut(code, "```")

	dir := t.TempDir()
	pidfile := filepath.Join(dir, "app.pid")
	// The README uses /tmp paths and port 8080; keep the code as written
	// but point the pid file and log into the temp dir through the
	// environment, which overrides the options (that is documented too).
	code = strings.Replace(code, `"127.0.0.1:8080"`, `"127.0.0.1:0"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CDAEMON_PIDFILE="+pidfile, "CDAEMON_LOG="+filepath.Join(dir, "app.log"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run("go", "mod", "init", "example.com/app")
	run("go", "mod", "edit", "-replace", "github.com/cdaemon/cdaemon="+root)
	run("go", "mod", "tidy")
	run("go", "build", "-o", "app", ".")
	run("./app", "start")
	if out := run("./app", "status"); !strings.Contains(out, "running (pid") {
		t.Fatalf("status: %q", out)
	}
	if out := run("./app", "stop"); !strings.Contains(out, "stopped") {
		t.Fatalf("stop: %q", out)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatalf("pid file left after stop: %v", err)
	}
}
