package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Contender is one way of starting the same daemon.
type Contender struct {
	Key   string // for -only, the CSV and the charts
	Name  string // the table's label
	Short string // the charts' label
	// Floor marks a start-up floor: the program is not a daemon, it
	// reports ready and keeps running. There is no launcher exit and no
	// daemon check, only the time to ready.
	Floor bool
	// Go marks the contenders that run benchdaemon: they take part in the
	// init-cost scaling.
	Go   bool
	Argv func(p *Programs) []string
	Env  []string
	// Needs names a program that may be missing (ruby): the contender is
	// skipped, and the report says so, when Programs has none.
	Needs string
}

// Programs are the binaries the contenders run, built by Build.
type Programs struct {
	Daemon     string // cmd/benchdaemon
	ExecMaster string // cmd/execmaster
	CProg      string // cprog/cprog.c
	Cdaemonize string // ../build/cdaemonize
	Ruby       string // "" when ruby is not installed
	RubyScript string // daemon.rb
}

// Contenders are every contender, in table order; the first is the
// reference of every ratio.
var Contenders = []Contender{
	{Key: "cdaemon", Short: "(1) cdaemon", Name: "(1) cdaemon, `CDAEMON=1 ./app` (pre-runtime, no exec)", Go: true,
		Argv: goApp, Env: []string{"CDAEMON=1", "BENCH_APPROACH=cdaemon"}},
	{Key: "gowrap-constructor", Short: "(2) gowrap, exec into constructor", Name: "(2) gowrap `Daemonize`, exec in place into the constructor", Go: true,
		Argv: goApp, Env: []string{"BENCH_APPROACH=gowrap-constructor"}},
	{Key: "reexec", Short: "(3) re-exec reference", Name: "(3) re-exec reference: a copy with `Setsid`, standard library only", Go: true,
		Argv: goApp, Env: []string{"BENCH_APPROACH=reexec"}},
	{Key: "go-daemon", Short: "(4) go-daemon", Name: "(4) sevlyar/go-daemon v0.1.6 `Reborn`", Go: true,
		Argv: goApp, Env: []string{"BENCH_APPROACH=go-daemon"}},
	{Key: "godaemon", Short: "(5) godaemon", Name: "(5) VividCortex/godaemon v1.0.0 `MakeDaemon`", Go: true,
		Argv: goApp, Env: []string{"BENCH_APPROACH=godaemon"}},
	{Key: "daemon3", Short: "(6) daemon(3)", Name: "(6) C, glibc `daemon(3)` (the native floor)",
		Argv: func(p *Programs) []string { return []string{p.CProg, "daemon"} }},
	{Key: "go-floor", Short: "(7) Go floor", Name: "(7) the Go app, not daemonized (Go start-up floor)", Go: true, Floor: true,
		Argv: goApp, Env: []string{"BENCH_APPROACH=foreground"}},
	{Key: "ruby", Short: "(8) Ruby", Name: "(8) Ruby `Process.daemon`", Needs: "ruby",
		Argv: func(p *Programs) []string { return []string{p.Ruby, p.RubyScript} }},
	{Key: "cdaemonize", Short: "(9) cdaemonize", Name: "(9) `cdaemonize --notify -- ./app`", Go: true,
		Argv: func(p *Programs) []string { return []string{p.Cdaemonize, "--notify", "--", p.Daemon} },
		Env:  []string{"BENCH_APPROACH=notify-fd3"}},
	{Key: "c-floor", Short: "(10) C floor", Name: "(10) C, not daemonized (C start-up floor)", Floor: true,
		Argv: func(p *Programs) []string { return []string{p.CProg, "plain"} }},
}

// Broken contenders, for the harness's own tests: each must be caught.
var (
	keepTTY = Contender{Key: "keep-tty", Name: "daemon(0, 1): stdio left on the terminal",
		Argv: func(p *Programs) []string { return []string{p.CProg, "keep-tty"} }}
	leftBehind = Contender{Key: "left-behind", Name: "a launcher that leaves a child behind",
		Argv: func(p *Programs) []string { return []string{p.CProg, "left-behind"} }}
	lateReady = Contender{Key: "late", Name: "a daemon that reports ready only after its launcher exited",
		Argv: func(p *Programs) []string { return []string{p.CProg, "late"} }}
)

func goApp(p *Programs) []string { return []string{p.Daemon} }

// ContenderKeys lists the keys, for usage messages.
func ContenderKeys() []string {
	var k []string
	for _, c := range Contenders {
		k = append(k, c.Key)
	}
	return k
}

// Build builds every program of the benchmark into outDir: the Go app and
// the exec master from the bench module in moduleDir, the C contenders
// with the system's cc, and cdaemonize with the repository's Makefile. Go
// programs are built with the toolchain's defaults (cgo on, dynamically
// linked: what the cdaemon constructor needs, and what `go build` gives
// any program that imports net on a machine with a C compiler).
func Build(moduleDir, outDir string) (*Programs, error) {
	abs, err := filepath.Abs(moduleDir)
	if err != nil {
		return nil, err
	}
	p := &Programs{
		Daemon:     filepath.Join(outDir, "benchdaemon"),
		ExecMaster: filepath.Join(outDir, "execmaster"),
		CProg:      filepath.Join(outDir, "cprog"),
		Cdaemonize: filepath.Join(abs, "..", "build", "cdaemonize"),
		RubyScript: filepath.Join(abs, "daemon.rb"),
	}
	p.Ruby, _ = exec.LookPath("ruby")
	steps := []*exec.Cmd{
		exec.Command("go", "build", "-o", p.Daemon, "./cmd/benchdaemon"),
		exec.Command("go", "build", "-o", p.ExecMaster, "./cmd/execmaster"),
		exec.Command("cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", p.CProg, "cprog/cprog.c"),
		exec.Command("make", "-s", "-C", "..", "build/cdaemonize"),
	}
	for _, cmd := range steps {
		cmd.Dir = abs
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("bench: %s: %w\n%s", cmd.String(), err, out)
		}
	}
	for _, f := range []string{p.Daemon, p.ExecMaster, p.CProg, p.Cdaemonize, p.RubyScript} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("bench: build: %w", err)
		}
	}
	return p, nil
}
