// Command benchrun builds the benchmark daemon, starts it N times with
// each approach, interleaved, prints a Markdown table of medians and 90th
// percentiles and writes it to results/latest.md. Run it from the bench module
// (make bench does): see ../README.md for what the columns mean.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cdaemon/cdaemon/bench"
)

func main() {
	n := flag.Int("n", 30, "measured runs per approach")
	warmup := flag.Int("warmup", 1, "rounds run first and discarded")
	timeout := flag.Duration("timeout", 5*time.Second, "bound of one run; a start still not ready then counts as at least this long")
	only := flag.String("only", "", "comma-separated approach keys to run (default all): "+keys())
	out := flag.String("out", "results/latest.md", "file the report is written to (\"\" for none)")
	flag.Parse()
	if *n < 1 {
		fatal(fmt.Errorf("-n %d: want at least 1", *n))
	}

	approaches, err := selected(*only)
	if err != nil {
		fatal(err)
	}
	work, err := os.MkdirTemp("", "cdaemon-bench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)

	fmt.Fprintln(os.Stderr, "bench: building cmd/benchdaemon")
	bin, err := bench.BuildDaemon(".", work)
	if err != nil {
		fatal(err)
	}
	ruby, _ := exec.LookPath("ruby")
	cfg := bench.Config{
		N: *n, Warmup: *warmup, Timeout: *timeout, Approaches: approaches,
		DaemonBin: bin, Ruby: ruby, WorkDir: work, Progress: os.Stderr,
	}
	// Ctrl-C stops after the current run, once its daemon is reaped:
	// nothing is left running.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	go func() { <-sigs; close(stop) }()
	cfg.Stop = stop

	began := time.Now()
	results, err := bench.Run(cfg)
	if err != nil {
		os.RemoveAll(work)
		fatal(err)
	}
	if left := bench.Descendants(); len(left) > 0 {
		fatal(fmt.Errorf("processes left behind: %v", left))
	}

	table := bench.Table(results)
	notes := bench.Notes(results)
	fmt.Print(table)
	if notes != "" {
		fmt.Print("\n" + notes)
	}
	fmt.Fprintf(os.Stderr, "bench: %d runs per approach in %v\n", *n, time.Since(began).Round(time.Second))
	if *out == "" {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# cdaemon start-up benchmark\n\n")
	fmt.Fprintf(&b, "- date: %s\n", began.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %s\n", bench.Machine())
	fmt.Fprintf(&b, "- N: %d runs per approach, interleaved round-robin, after %d warm-up round(s)\n", *n, *warmup)
	fmt.Fprintf(&b, "- command: `make bench` (`cd bench && go run ./cmd/benchrun`)\n\n")
	b.WriteString(table)
	if notes != "" {
		b.WriteString("\n" + notes)
	}
	b.WriteString("\nTimes are from the exec of the launcher. \"Ready\" is when a TCP connection to the daemon read \"hello\"; " +
		"\"not ready at launcher exit\" counts runs where a connection made as the launcher exited was refused (the `Type=forking` race). " +
		"\"Program starts\" counts program images started per daemon start (each Go `init()` run follows an execve). " +
		"Compare ratios within this run, not absolute times: see README.md.\n")
	if err := os.WriteFile(filepath.Clean(*out), []byte(b.String()), 0o644); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", *out)
}

func keys() string {
	var k []string
	for _, a := range bench.Approaches {
		k = append(k, a.Key)
	}
	return strings.Join(k, ",")
}

// selected returns the approaches named in only, in table order, so
// that the first (the reference of the ratios) stays first.
func selected(only string) ([]bench.Approach, error) {
	if only == "" {
		return bench.Approaches, nil
	}
	want := map[string]bool{}
	for _, key := range strings.Split(only, ",") {
		want[key] = true
	}
	var out []bench.Approach
	for _, a := range bench.Approaches {
		if want[a.Key] {
			out = append(out, a)
			delete(want, a.Key)
		}
	}
	for key := range want {
		return nil, fmt.Errorf("-only: no approach %q (have %s)", key, keys())
	}
	return out, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(1)
}
