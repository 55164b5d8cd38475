// Command benchrun builds every contender, runs the experiments and writes
// the results: a Markdown report, CSV files of every measurement and SVG
// charts, in results/ (results/quick/ with -quick). Run it from the bench
// module, as make bench does; ../README.md says what is measured.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cdaemon/cdaemon/bench"
)

func main() {
	// Before anything else: the harness runs as the leader of a session
	// of its own, on a pty, like an operator's shell (see session.go).
	bench.EnterSession()

	quick := flag.Bool("quick", false, "a quick check of the whole harness: few rounds, results in results/quick")
	rounds := flag.Int("rounds", 200, "start-up experiment: measured rounds (each starts every contender once)")
	scale := flag.Int("scale-rounds", 40, "scaling experiments: measured rounds per level")
	respawns := flag.Int("respawns", 40, "prefork experiment: worker kills per master")
	upgrades := flag.Int("upgrades", 20, "upgrade experiment: upgrades in place of each daemon, under load")
	taxRounds := flag.Int("tax-rounds", 50, "tax experiment: perf stat runs of each program")
	warmup := flag.Int("warmup", 2, "rounds run first and discarded")
	timeout := flag.Duration("timeout", 10*time.Second, "bound of one start; a start still not ready then counts as at least this long")
	only := flag.String("only", "", "comma-separated contenders to run (default all): "+strings.Join(bench.ContenderKeys(), ","))
	exps := flag.String("experiments", "", "comma-separated experiments to run (default all): "+strings.Join(bench.Experiments, ","))
	out := flag.String("out", "", "directory the results are written to (default results, or results/quick with -quick)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: benchrun [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		usage(fmt.Errorf("unexpected argument %q", flag.Arg(0)))
	}
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]*int{"rounds": rounds, "scale-rounds": scale, "respawns": respawns, "upgrades": upgrades, "tax-rounds": taxRounds} {
			if !set[name] {
				*v = 3
			}
		}
		if !set["rounds"] {
			*rounds = 10
		}
		if !set["warmup"] {
			*warmup = 1
		}
	}
	if *out == "" {
		*out = "results"
		if *quick {
			*out = filepath.Join("results", "quick")
		}
	}
	for name, v := range map[string]int{"rounds": *rounds, "scale-rounds": *scale, "respawns": *respawns, "upgrades": *upgrades, "tax-rounds": *taxRounds} {
		if v < 1 {
			usage(fmt.Errorf("-%s %d: want at least 1", name, v))
		}
	}
	if *warmup < 0 {
		usage(fmt.Errorf("-warmup %d: want 0 or more", *warmup))
	}
	if *timeout <= 0 {
		usage(fmt.Errorf("-timeout %v: want a positive duration", *timeout))
	}
	cfg := bench.Config{Rounds: *rounds, ScaleRounds: *scale, Respawns: *respawns, Upgrades: *upgrades, TaxRounds: *taxRounds, Warmup: *warmup,
		Timeout: *timeout, Progress: os.Stderr}
	var err error
	if cfg.Only, err = list(*only, bench.ContenderKeys()); err != nil {
		usage(fmt.Errorf("-only: %w", err))
	}
	if cfg.Experiments, err = list(*exps, bench.Experiments); err != nil {
		usage(fmt.Errorf("-experiments: %w", err))
	}

	term, err := bench.OpenTerminal()
	if err != nil {
		fatal(err)
	}
	defer term.Close()
	if cfg.Work, err = os.MkdirTemp("", "cdaemon-bench-"); err != nil {
		fatal(err)
	}
	defer os.RemoveAll(cfg.Work)
	fmt.Fprintln(os.Stderr, "bench: building the contenders")
	progs, err := bench.Build(".", cfg.Work)
	if err != nil {
		fatal(err)
	}
	// INT or TERM (forwarded by EnterSession) stops after the current
	// start, once its processes are reaped; the partial results are
	// written all the same, marked as such.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	go func() { <-sigs; close(stop) }()
	cfg.Stop = stop

	res, err := bench.Run(progs, term, cfg)
	if err != nil {
		fatal(err)
	}
	if left := bench.Descendants(); len(left) > 0 {
		fatal(fmt.Errorf("processes left behind: %v", left))
	}
	files, err := bench.Write(res, *out)
	if err != nil {
		fatal(err)
	}
	fmt.Print(bench.Report(res))
	fmt.Fprintf(os.Stderr, "bench: done in %v; wrote %s\n", res.Took.Round(time.Second), strings.Join(files, ", "))
	if res.Stopped {
		fmt.Fprintln(os.Stderr, "bench: interrupted: the results are partial")
		os.Exit(130)
	}
}

// list parses a comma-separated list of names, each one of have.
func list(s string, have []string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, k := range strings.Split(s, ",") {
		if !slices.Contains(have, k) {
			return nil, fmt.Errorf("no %q (have %s)", k, strings.Join(have, ","))
		}
		out = append(out, k)
	}
	return out, nil
}

func usage(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	flag.Usage()
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(1)
}
