package cdaemon_test

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// 7. Build recipes: the ways a user may build a program that imports
// cdaemon. Each recipe that works is built once per run (in the
// background, with the other artifacts) and proved by the checks below;
// each that cannot work is refused loudly, by the tests after them. The
// README's "Build recipes" table lists both, with these command lines
// (TestBuildRecipesInREADME).

// recipe is one way to build: what `go build` gets, and what the binary
// must look like, so that a recipe that silently builds something else
// (a toolchain that drops a flag) cannot pass for itself.
type recipe struct {
	name  string
	env   []string // added to go build's environment
	flags []string // go build's flags, one argument each
	tool  string   // a compiler the recipe needs beyond go and gcc ...
	pkg   string   // ... and the Debian package that installs it
	shape func(s elfShape) string
}

// musl passes no arguments to ELF constructors (glibc passes argc, argv,
// envp): the constructor reads the environment only, and the prefork
// master finds the argv area from /proc/self/stat (arg_start, arg_end),
// so the musl recipes prove that nothing depends on them.
var recipes = []recipe{
	{name: "default", shape: func(s elfShape) string {
		return s.want(s.interp != "", "a dynamic executable (PT_INTERP)")
	}},
	{name: "pie", flags: []string{"-buildmode=pie"}, shape: func(s elfShape) string {
		return s.want(s.typ == elf.ET_DYN && s.interp != "", "a dynamic PIE (ET_DYN, PT_INTERP)")
	}},
	{name: "static", flags: []string{"-ldflags=-linkmode=external -extldflags=-static"}, shape: func(s elfShape) string {
		return s.want(s.typ == elf.ET_EXEC && s.interp == "" && s.glibc, "a static glibc executable (ET_EXEC, no PT_INTERP)")
	}},
	{name: "static-pie", flags: []string{"-buildmode=pie", "-ldflags=-linkmode=external -extldflags=-static-pie"}, shape: func(s elfShape) string {
		return s.want(s.typ == elf.ET_DYN && s.interp == "" && s.glibc, "a static glibc PIE (ET_DYN, no PT_INTERP)")
	}},
	{name: "musl", env: []string{"CC=musl-gcc"}, flags: []string{"-ldflags=-linkmode=external -extldflags=-static"},
		tool: "musl-gcc", pkg: "musl-tools", shape: func(s elfShape) string {
			return s.want(s.interp == "" && s.musl && !s.glibc, "a static musl executable (no PT_INTERP, musl's __init_libc, no glibc)")
		}},
	{name: "musl-dynamic", env: []string{"CC=musl-gcc"},
		tool: "musl-gcc", pkg: "musl-tools", shape: func(s elfShape) string {
			return s.want(strings.Contains(s.interp, "ld-musl"), "a dynamic executable on musl's loader")
		}},
	{name: "stripped", flags: []string{"-ldflags=-s -w"}, shape: func(s elfShape) string {
		return s.want(!s.symtab, "no symbol table")
	}},
	{name: "bind-now", flags: []string{"-ldflags=-extldflags=-Wl,-z,now"}, shape: func(s elfShape) string {
		return s.want(s.bindNow, "DF_BIND_NOW or DF_1_NOW set")
	}},
}

// artifact is the name of the recipe's binary in artifacts.
func (r recipe) artifact() string {
	if r.name == "default" {
		return "default" // the test daemon every other test uses
	}
	return "recipe-" + r.name
}

// line is the recipe as a shell command line, as the README shows it.
func (r recipe) line() string {
	words := append(slices.Clone(r.env), "go", "build")
	for _, f := range r.flags {
		if strings.ContainsAny(f, " ") {
			k, v, _ := strings.Cut(f, "=")
			f = k + " '" + v + "'"
		}
		words = append(words, f)
	}
	return strings.Join(words, " ")
}

func init() {
	for _, r := range recipes {
		if r.name == "default" {
			continue
		}
		build := goBuildEnv("testdaemon-"+r.name, r.env, append(slices.Clone(r.flags), "./testdata/testdaemon")...)
		if r.tool != "" {
			tool, pkg, b := r.tool, r.pkg, build
			build = func(ctx context.Context, dir string) ([]string, []byte, error) {
				if _, err := exec.LookPath(tool); err != nil {
					return nil, nil, &missingTool{tool: tool, pkg: pkg}
				}
				return b(ctx, dir)
			}
		}
		artifacts[r.artifact()] = &artifact{build: build}
		buildOrder = append(buildOrder, r.artifact())
	}
}

// elfShape is what a recipe's binary is, read from its ELF headers.
type elfShape struct {
	typ     elf.Type
	interp  string // PT_INTERP, "" if static
	symtab  bool   // .symtab present
	bindNow bool   // DT_FLAGS has DF_BIND_NOW or DT_FLAGS_1 has DF_1_NOW
	musl    bool   // musl's start-up code (__init_libc) is linked in
	glibc   bool   // needs libc.so.6, or has glibc's static start-up code
	summary string
}

func (s elfShape) want(ok bool, what string) string {
	if ok {
		return ""
	}
	return "want " + what + ", got " + s.summary
}

func readELFShape(path string) (elfShape, error) {
	f, err := elf.Open(path)
	if err != nil {
		return elfShape{}, err
	}
	defer f.Close()
	s := elfShape{typ: f.Type, symtab: f.Section(".symtab") != nil}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return s, err
			}
			s.interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if v, err := f.DynValue(elf.DT_FLAGS); err == nil && len(v) > 0 && v[0]&uint64(elf.DF_BIND_NOW) != 0 {
		s.bindNow = true
	}
	if v, err := f.DynValue(elf.DT_FLAGS_1); err == nil && len(v) > 0 && v[0]&uint64(elf.DF_1_NOW) != 0 {
		s.bindNow = true
	}
	libs, _ := f.ImportedLibraries()
	s.glibc = slices.Contains(libs, "libc.so.6")
	syms, _ := f.Symbols() // none when stripped
	for _, sym := range syms {
		switch sym.Name {
		case "__init_libc":
			s.musl = true
		case "__libc_setup_tls":
			s.glibc = true
		}
	}
	s.summary = fmt.Sprintf("%v, interp %q, symtab %v, bind-now %v, musl %v, glibc %v, libraries %v",
		s.typ, s.interp, s.symtab, s.bindNow, s.musl, s.glibc, libs)
	return s, nil
}

// The daemon sequence works whatever the executable looks like. Each
// recipe's binary gets every check of a daemon that depends on how it was
// built: the core invariants (TestDaemonInvariants, with argv, cmdline and
// the environment checked byte for byte), readiness and the pid file, the
// failure and timeout paths, every bad variable (the constructor's error
// path; user and group names go through the libc's NSS, which a static
// glibc reaches only through dlopen), the trigger scrubbed for children,
// the privilege drop (initgroups, getgrouplist), the terminal hangup, and
// the prefork master's process titles. The subtests run one at a time: the
// cleanup of each kills every process of the test binaries.
func TestBuildModes(t *testing.T) {
	for _, r := range recipes {
		t.Run(r.name, func(t *testing.T) {
			bin := need(t, r.artifact())[0]
			s, err := readELFShape(bin)
			if err != nil {
				t.Fatal(err)
			}
			if msg := r.shape(s); msg != "" {
				t.Fatalf("%s built something else: %s", r.line(), msg)
			}
			t.Logf("%s: %s", r.line(), s.summary)
			t.Run("invariants", func(t *testing.T) {
				for _, v := range variants {
					t.Run(v.name, func(t *testing.T) { checkDaemon(t, bin, v) })
				}
			})
			t.Run("readiness", func(t *testing.T) { checkReadiness(t, bin) })
			t.Run("fail", func(t *testing.T) { checkFailBeforeReady(t, bin) })
			t.Run("timeout", func(t *testing.T) { checkNeverReadyTimesOut(t, bin) })
			t.Run("bad-environment", func(t *testing.T) { checkBadEnvironment(t, bin) })
			t.Run("trigger-not-inherited", func(t *testing.T) { checkTriggerDoesNotLeak(t, bin) })
			t.Run("privileges", func(t *testing.T) { checkPrivilegeDrop(t, bin) })
			t.Run("terminal-hangup", func(t *testing.T) { checkTerminalHangup(t, bin) })
			t.Run("prefork-titles", func(t *testing.T) { checkPreforkTitles(t, bin) })
		})
	}
}

// checkPreforkTitles starts bin as a prefork master with two workers and
// checks what ps shows: "NAME: master" and "NAME: worker[N]", set through
// PR_SET_MM_MAP from the argv area the master found in /proc/self/stat,
// while each worker's Go runtime still sees its argv and environment as
// given (os.Args points into the area the kernel showed before).
func checkPreforkTitles(t *testing.T, bin string) {
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "d.pid")
	env := []string{"CDAEMON=1", "CDAEMON_WORKERS=2", "CDAEMON_LISTEN=unix:" + filepath.Join(dir, "s.sock"),
		"CDAEMON_PIDFILE=" + pidPath, "CDTEST_MARK=" + markValue}
	l := launch(t, launchSpec{bin: bin, mode: "serve", env: env, args: markArgs})
	l.waitReady()
	master := pidFromFile(t, pidPath)
	name := filepath.Base(bin)
	if got, want := proctest.ReadFile(t, master, "cmdline"), name+": master\x00"; got != want {
		t.Errorf("master cmdline %q, want %q", got, want)
	}
	// The master never starts the Go runtime: one thread.
	if got := proctest.MustStatus(t, master)["Threads"]; got != "1" {
		t.Errorf("master has %s threads, want 1", got)
	}
	seen := map[string]bool{}
	for range 2 {
		r := l.report()
		if s := proctest.MustStat(t, r.PID); s.PPID != master {
			t.Errorf("worker %d: ppid %d, want the master %d", r.PID, s.PPID, master)
		}
		cmdline := proctest.ReadFile(t, r.PID, "cmdline")
		seen[cmdline] = true
		if !r.Daemonized {
			t.Errorf("worker %d: cdaemon.Daemonized() = false", r.PID)
		}
		if !slices.Equal(r.Args, append([]string{bin}, markArgs...)) || r.Mark != markValue {
			t.Errorf("worker %d: os.Args %q, CDTEST_MARK %q; want %q and %q", r.PID, r.Args, r.Mark, markArgs, markValue)
		}
		if got := ping(t, r.Port); got != r.PID {
			t.Errorf("worker %d: pong from %d", r.PID, got)
		}
	}
	for i := range 2 {
		if w := fmt.Sprintf("%s: worker[%d]\x00", name, i); !seen[w] {
			t.Errorf("no worker with cmdline %q among %q", w, slices.Collect(maps.Keys(seen)))
		}
	}
	// A stop: the master stops its workers, removes the pid file, exits 0.
	if err := unix.Kill(master, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := waitDaemonExit(t, master); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("master ended with %v, want exit 0", ws)
	}
	if _, err := os.Lstat(pidPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after the stop: %v, want it removed", err)
	}
	assertNoneRunning(t, bin)
}

// The README's build table shows every recipe with its command line, the
// ones that work and the ones refused, each refused one with its test.
func TestBuildRecipesInREADME(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Build recipes\n")
	if !ok {
		t.Fatal(`README.md has no "## Build recipes" section`)
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := func(name string) string {
		for _, line := range strings.Split(table, "\n") {
			if strings.HasPrefix(line, "| "+name+" |") {
				return line
			}
		}
		t.Errorf("README build table: no row for %q", name)
		return ""
	}
	for _, r := range recipes {
		if line := row(r.name); line != "" && (!strings.Contains(line, "`"+r.line()+"`") || !strings.Contains(line, "| works |")) {
			t.Errorf("README build table, row %q: want `%s` and \"works\":\n%s", r.name, r.line(), line)
		}
	}
	for _, r := range refusedRecipes {
		if line := row(r.name); line != "" && (!strings.Contains(line, "`"+r.line+"`") || !strings.Contains(line, "| refused") || !strings.Contains(line, r.test)) {
			t.Errorf("README build table, row %q: want `%s`, \"refused\" and %s:\n%s", r.name, r.line, r.test, line)
		}
	}
}

// The builds that cannot work, and the test that proves each is refused.
var refusedRecipes = []struct{ name, line, test string }{
	{"internal linking", "go build -ldflags=-linkmode=internal", "TestInternalLinkmodeRefused"},
	{"c-shared", "go build -buildmode=c-shared", "TestCSharedRefused"},
	{"c-archive", "go build -buildmode=c-archive", "TestCArchiveRefused"},
	{"no cgo", "CGO_ENABLED=0 go build", "TestNoCgoBuildFails"},
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
	checkLibraryRefused(t, "c-shared", paths[0], paths[1])
}

// -buildmode=c-archive, linked into a C program, starts the runtime the
// same way: refused the same way.
func TestCArchiveRefused(t *testing.T) {
	checkLibraryRefused(t, "c-archive", need(t, "carchive")[0])
}

// checkLibraryRefused runs a C program that calls into a Go library built
// with -buildmode=mode: it must exit 70 with a message, before the
// library's function returns.
func checkLibraryRefused(t *testing.T, mode string, argv ...string) {
	for _, c := range []struct {
		name string
		env  []string
		want []string
	}{
		// The Go side's check (checkBuild), from the package's init.
		{"untriggered", nil, []string{"-buildmode=" + mode + " is not supported"}},
		// The constructor's thread check (sequence.c), before any fork.
		{"triggered", []string{"CDAEMON=1"}, []string{"threads", mode}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = append(cleanEnv(), c.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 70 {
				t.Errorf("%s exit %d, want 70:\n%s", filepath.Base(argv[0]), code, out)
			}
			assertContains(t, "output", string(out), c.want...)
			if strings.Contains(string(out), "ping returned") {
				t.Errorf("the library's function ran:\n%s", out)
			}
		})
	}
}
