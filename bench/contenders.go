package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
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
	// Go marks the contenders that run a Go program with the readiness
	// body (internal/readyapp): they count init() runs, and those of the
	// main table take part in the scaling experiments.
	Go   bool
	Argv func(p *Programs) []string
	Env  []string
	// Needs names a program that may be missing (ruby, musl-gcc): the
	// contender is skipped, and the report says so, when it is.
	Needs string
	// Group places the contender in the report: "" the main table,
	// "single" the rows of the single cgo binary, "recipe" the build
	// recipes' table (Recipe names which).
	Group  string
	Recipe string
}

// Programs are the binaries the contenders run, built by Build. Each Go
// contender has a binary of its own, built as its users build it: the
// peers pure Go (CGO_ENABLED=0, static), cdaemon and gowrap with cgo.
type Programs struct {
	Daemon     string            // cmd/benchdaemon: the single cgo binary (every approach); the prefork worker
	ExecMaster string            // cmd/execmaster
	Plain      string            // cmd/app-plain, pure Go: the Go floor, and cdaemonize's program
	PlainCgo   string            // cmd/app-plain -tags cgoruntime, cgo on: runtime/cgo alone (tax measurements)
	Gowrap     string            // cmd/app-gowrap
	Reexec     string            // cmd/peer-reexec, pure Go
	GoDaemon   string            // cmd/peer-go-daemon, pure Go
	Godaemon   string            // cmd/peer-godaemon, pure Go
	Cdaemon    map[string]string // cmd/app-cdaemon, one build per Recipe key
	CProg      string            // cprog/cprog.c
	Cdaemonize string            // ../build/cdaemonize
	Ruby       string            // "" when ruby is not installed
	RubyScript string            // daemon.rb
	// Versioned is ../examples/prefork/testdata/versioned built as v1 and
	// as v2 (-X main.version): the upgrade experiment's two releases.
	Versioned [2]string
	Missing   map[string]string // a program or recipe not available here: why
}

// Peers are the pure-Go peer binaries, by contender key: what
// TestPeersArePureGo checks.
func (p *Programs) Peers() map[string]string {
	return map[string]string{"reexec": p.Reexec, "go-daemon": p.GoDaemon, "godaemon": p.Godaemon, "go-floor": p.Plain}
}

func cdaemonApp(recipe string) func(p *Programs) []string {
	return func(p *Programs) []string { return []string{p.Cdaemon[recipe]} }
}

func single(p *Programs) []string { return []string{p.Daemon} }

// Contenders are every contender, in table order; the first is the
// reference of every ratio.
var Contenders = append([]Contender{
	{Key: "cdaemon", Short: "(1) cdaemon", Name: "(1) cdaemon, `CDAEMON=1 ./app` (pre-runtime, no exec; cgo, default build)", Go: true,
		Argv: cdaemonApp("default"), Env: []string{"CDAEMON=1", "BENCH_APPROACH=cdaemon"}},
	{Key: "gowrap-constructor", Short: "(2) gowrap, exec into constructor", Name: "(2) gowrap `Daemonize`, exec in place into the constructor (cgo)", Go: true,
		Argv: func(p *Programs) []string { return []string{p.Gowrap} }},
	{Key: "reexec", Short: "(3) re-exec reference", Name: "(3) re-exec reference: a copy with `Setsid`, standard library only (pure Go)", Go: true,
		Argv: func(p *Programs) []string { return []string{p.Reexec} }},
	{Key: "go-daemon", Short: "(4) go-daemon", Name: "(4) sevlyar/go-daemon v0.1.6 `Reborn` (pure Go)", Go: true,
		Argv: func(p *Programs) []string { return []string{p.GoDaemon} }},
	{Key: "godaemon", Short: "(5) godaemon", Name: "(5) VividCortex/godaemon v1.0.0 `MakeDaemon` (pure Go)", Go: true,
		Argv: func(p *Programs) []string { return []string{p.Godaemon} }},
	{Key: "daemon3", Short: "(6) daemon(3)", Name: "(6) C, glibc `daemon(3)` (the native floor)",
		Argv: func(p *Programs) []string { return []string{p.CProg, "daemon"} }},
	{Key: "go-floor", Short: "(7) Go floor, pure Go", Name: "(7) the Go app, not daemonized, pure Go (Go start-up floor)", Go: true, Floor: true,
		Argv: func(p *Programs) []string { return []string{p.Plain} }},
	{Key: "cgo-floor", Short: "(7c) Go floor with cgo", Name: "(7c) the Go app with cgo: (1)'s binary without `CDAEMON` (cgo floor)", Go: true, Floor: true,
		Argv: cdaemonApp("default"), Env: []string{"BENCH_APPROACH=foreground"}},
	{Key: "ruby", Short: "(8) Ruby", Name: "(8) Ruby `Process.daemon`", Needs: "ruby",
		Argv: func(p *Programs) []string { return []string{p.Ruby, p.RubyScript} }},
	{Key: "cdaemonize", Short: "(9) cdaemonize", Name: "(9) `cdaemonize --notify -- ./app` (the app pure Go)", Go: true,
		Argv: func(p *Programs) []string { return []string{p.Cdaemonize, "--notify", "--", p.Plain} },
		Env:  []string{"BENCH_APPROACH=notify-fd3"}},
	{Key: "c-floor", Short: "(10) C floor", Name: "(10) C, not daemonized (C start-up floor)", Floor: true,
		Argv: func(p *Programs) []string { return []string{p.CProg, "plain"} }},

	// The single cgo binary, as every Go contender ran before issue 14.
	{Key: "cdaemon-single", Short: "(1s) cdaemon, single cgo binary", Name: "(1s) cdaemon, single cgo binary", Go: true, Group: "single",
		Argv: single, Env: []string{"CDAEMON=1", "BENCH_APPROACH=cdaemon"}},
	{Key: "reexec-single", Short: "(3s) re-exec, single cgo binary", Name: "(3s) re-exec reference, single cgo binary", Go: true, Group: "single",
		Argv: single, Env: []string{"BENCH_APPROACH=reexec"}},
	{Key: "go-daemon-single", Short: "(4s) go-daemon, single cgo binary", Name: "(4s) sevlyar/go-daemon, single cgo binary", Go: true, Group: "single",
		Argv: single, Env: []string{"BENCH_APPROACH=go-daemon"}},
	{Key: "godaemon-single", Short: "(5s) godaemon, single cgo binary", Name: "(5s) VividCortex/godaemon, single cgo binary", Go: true, Group: "single",
		Argv: single, Env: []string{"BENCH_APPROACH=godaemon"}},
}, recipeContenders()...)

// recipeContenders are (1) and (7c) built with every recipe but the
// default (those are (1) and (7c) themselves).
func recipeContenders() []Contender {
	var out []Contender
	for _, r := range Recipes[1:] {
		out = append(out,
			Contender{Key: "cdaemon@" + r.Key, Short: "(1) cdaemon, " + r.Key, Name: "(1) cdaemon, built " + r.Key,
				Go: true, Group: "recipe", Recipe: r.Key, Needs: r.Needs,
				Argv: cdaemonApp(r.Key), Env: []string{"CDAEMON=1", "BENCH_APPROACH=cdaemon"}},
			Contender{Key: "cgo-floor@" + r.Key, Short: "(7c) cgo floor, " + r.Key, Name: "(7c) cgo floor, built " + r.Key,
				Go: true, Floor: true, Group: "recipe", Recipe: r.Key, Needs: r.Needs,
				Argv: cdaemonApp(r.Key), Env: []string{"BENCH_APPROACH=foreground"}})
	}
	return out
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

// ContenderKeys lists the keys, for usage messages.
func ContenderKeys() []string {
	var k []string
	for _, c := range Contenders {
		k = append(k, c.Key)
	}
	return k
}

// Build builds every program of the benchmark into outDir: the Go
// programs from the bench module in moduleDir, each as its users build it
// (the peers and the Go floor with CGO_ENABLED=0; cdaemon, gowrap and the
// single binary with cgo, which the constructor needs; cmd/app-cdaemon
// once per Recipe), the C contenders with the system's cc, and cdaemonize
// with the repository's Makefile. Two builds run at a time (the machine
// has two CPUs). A recipe whose tool is missing (musl-gcc) is left out
// and named in Missing; any other failed build is an error.
func Build(moduleDir, outDir string) (*Programs, error) {
	abs, err := filepath.Abs(moduleDir)
	if err != nil {
		return nil, err
	}
	bin := func(name string) string { return filepath.Join(outDir, name) }
	p := &Programs{
		Daemon:     bin("benchdaemon"),
		ExecMaster: bin("execmaster"),
		Plain:      bin("app-plain"),
		PlainCgo:   bin("app-plain-cgo"),
		Gowrap:     bin("app-gowrap"),
		Reexec:     bin("peer-reexec"),
		GoDaemon:   bin("peer-go-daemon"),
		Godaemon:   bin("peer-godaemon"),
		Cdaemon:    map[string]string{},
		CProg:      bin("cprog"),
		Cdaemonize: filepath.Join(abs, "..", "build", "cdaemonize"),
		RubyScript: filepath.Join(abs, "daemon.rb"),
		Missing:    map[string]string{},
		Versioned:  [2]string{bin("versioned-v1"), bin("versioned-v2")},
	}
	p.Ruby, _ = exec.LookPath("ruby")
	if p.Ruby == "" {
		p.Missing["ruby"] = "not run: ruby is not installed (`apt-get install ruby`)"
	}
	pure, cgo := []string{"CGO_ENABLED=0"}, []string{"CGO_ENABLED=1"}
	goBuild := func(env []string, out string, args ...string) *exec.Cmd {
		cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		return cmd
	}
	steps := []*exec.Cmd{
		exec.Command("make", "-s", "-C", "..", "build/cdaemonize"),
		exec.Command("cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", p.CProg, "cprog/cprog.c"),
		goBuild(cgo, p.Daemon, "./cmd/benchdaemon"),
		goBuild(cgo, p.ExecMaster, "./cmd/execmaster"),
		goBuild(pure, p.Plain, "./cmd/app-plain"),
		goBuild(cgo, p.PlainCgo, "-tags", "cgoruntime", "./cmd/app-plain"),
		goBuild(cgo, p.Gowrap, "./cmd/app-gowrap"),
		goBuild(pure, p.Reexec, "./cmd/peer-reexec"),
		goBuild(pure, p.GoDaemon, "./cmd/peer-go-daemon"),
		goBuild(pure, p.Godaemon, "./cmd/peer-godaemon"),
	}
	for i, f := range p.Versioned {
		steps = append(steps, goBuild(cgo, f, fmt.Sprintf("-ldflags=-X main.version=v%d", i+1),
			"github.com/cdaemon/cdaemon/examples/prefork/testdata/versioned"))
	}
	for _, r := range Recipes {
		if why := r.available(); why != "" {
			p.Missing[r.Needs] = why
			continue
		}
		p.Cdaemon[r.Key] = bin("app-cdaemon-" + r.Key)
		steps = append(steps, goBuild(append(slices.Clone(cgo), r.Env...), p.Cdaemon[r.Key],
			append(slices.Clone(r.Flags), "./cmd/app-cdaemon")...))
	}
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 2)
	for i, cmd := range steps {
		cmd.Dir = abs
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("bench: %s: %w\n%s", cmd.String(), err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	files := []string{p.Daemon, p.ExecMaster, p.Plain, p.PlainCgo, p.Gowrap, p.Reexec, p.GoDaemon, p.Godaemon,
		p.CProg, p.Cdaemonize, p.RubyScript, p.Versioned[0], p.Versioned[1]}
	for _, f := range p.Cdaemon {
		files = append(files, f)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("bench: build: %w", err)
		}
	}
	return p, nil
}
