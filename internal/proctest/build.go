package proctest

// Building the programs under test, and the environment they run in.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// RepoRoot is the module root: the first directory with a go.mod at or
// above the test's working directory (the package directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// daemonVars are the variables that change how a program of this
// repository starts: cdaemon's trigger and settings, and what a service
// manager passes (systemd's socket activation, sd_notify, watchdog).
var daemonVars = []string{
	"CDAEMON", "LISTEN_", "WATCHDOG_", "NOTIFY_SOCKET", "INVOCATION_ID", "GOWRAP_REEXEC_CHILD",
}

// CleanEnv is the test's environment without the variables that change
// how a program of this repository starts (CDAEMON*, LISTEN_*,
// WATCHDOG_*, NOTIFY_SOCKET, INVOCATION_ID, GOWRAP_REEXEC_CHILD) and
// without those whose name starts with one of drop (a test's own knobs).
func CleanEnv(drop ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !hasPrefix(k, daemonVars) && !hasPrefix(k, drop) {
			env = append(env, kv)
		}
	}
	return env
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// GoBuild builds the Go package pkg (relative to the test's directory:
// "." is the package under test) with go build and flags, into
// t.TempDir() as name, and returns the binary's path.
func GoBuild(t testing.TB, name, pkg string, flags ...string) string {
	t.Helper()
	path, out, err := goBuild(t.TempDir(), name, pkg, flags)
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return path
}

// CBuild compiles and links C sources with gcc, with the warnings and
// standard of the Makefile and csrc/ on the include path, into
// t.TempDir() as name, and returns the binary's path. Relative source
// paths are the repository's; a pattern ("csrc/*.c", the library) stands
// for the files it matches.
func CBuild(t testing.TB, name string, srcs ...string) string {
	t.Helper()
	path, out, err := cBuild(RepoRoot(t), t.TempDir(), name, srcs)
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return path
}

func goBuild(dir, name, pkg string, flags []string) (string, []byte, error) {
	path := filepath.Join(dir, name)
	args := append(append([]string{"build", "-o", path}, flags...), pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = CleanEnv()
	out, err := cmd.CombinedOutput()
	return path, out, err
}

func cBuild(root, dir, name string, srcs []string) (string, []byte, error) {
	path := filepath.Join(dir, name)
	args := []string{"-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
		"-I" + filepath.Join(root, "csrc"), "-o", path}
	for _, src := range srcs {
		if !filepath.IsAbs(src) {
			src = filepath.Join(root, src)
		}
		if !strings.ContainsAny(src, "*?[") {
			args = append(args, src)
			continue
		}
		m, err := filepath.Glob(src)
		if err == nil && len(m) == 0 {
			err = fmt.Errorf("no file matches %s", src)
		}
		if err != nil {
			return "", nil, err
		}
		args = append(args, m...)
	}
	cmd := exec.Command("gcc", args...)
	cmd.Env = CleanEnv()
	out, err := cmd.CombinedOutput()
	return path, out, err
}

// Builds builds the programs of a test binary, each once whichever test
// needs it first, into one temporary directory; the processes running
// them are then ProcessesIn(Dir()). The zero value is ready to use;
// TestMain calls Remove once the tests have run.
type Builds struct {
	mu    sync.Mutex
	dir   string
	err   error
	progs map[string]*program
}

type program struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// Dir is the directory of the binaries, made on first use; "" if it
// could not be made (the builds then fail).
func (b *Builds) Dir() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" && b.err == nil {
		b.dir, b.err = os.MkdirTemp("", filepath.Base(os.Args[0])+"-")
	}
	return b.dir
}

// Go is GoBuild, once per name for the whole test binary.
func (b *Builds) Go(t testing.TB, name, pkg string, flags ...string) string {
	t.Helper()
	return b.get(t, name, func(dir string) (string, []byte, error) { return goBuild(dir, name, pkg, flags) })
}

// C is CBuild, once per name for the whole test binary.
func (b *Builds) C(t testing.TB, name string, srcs ...string) string {
	t.Helper()
	root := RepoRoot(t)
	return b.get(t, name, func(dir string) (string, []byte, error) { return cBuild(root, dir, name, srcs) })
}

func (b *Builds) get(t testing.TB, name string, build func(dir string) (string, []byte, error)) string {
	t.Helper()
	dir := b.Dir()
	b.mu.Lock()
	err := b.err
	if b.progs == nil {
		b.progs = map[string]*program{}
	}
	p := b.progs[name]
	if p == nil {
		p = &program{}
		b.progs[name] = p
	}
	b.mu.Unlock()
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	p.once.Do(func() { p.path, p.out, p.err = build(dir) })
	if p.err != nil {
		t.Fatalf("building %s: %v\n%s", name, p.err, p.out)
	}
	return p.path
}

// Remove removes the directory and the binaries in it.
func (b *Builds) Remove() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
