package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The tax experiment says where the cgo start-up tax goes (issue 14). It
// runs the Go floors to their ready line and lets them exit (BENCH_EXIT=1,
// the ready line into /dev/null): the pure-Go floor, runtime/cgo alone,
// and the cgo floor of every build recipe. Three tools look at them:
//
//   - perf stat (task-clock, page faults, context switches), once per
//     program per round, rounds interleaved and rotated like the
//     start-up experiment, so a busy phase of the machine hits them
//     alike. The VM has no hardware counters, so no cycles or
//     instructions.
//   - strace -f, once per program: every system call of the start, kept
//     raw, counted by name, with the thread stacks glibc maps
//     (MAP_STACK) and the threads created (CLONE_THREAD); and strace -f -c,
//     the kernel-time summary, kept raw.
//   - LD_DEBUG=statistics, once per dynamically linked program: the
//     loader's relocations and the cycles it spent (ld.so(8)).
//
// Counts do not depend on the machine's load; task-clock does, and is
// compared only as a difference to the pure floor within the run.

// TaxProgram is one program of the tax experiment.
type TaxProgram struct {
	Key, Name string
	Path      string
	Recipe    string   // the recipe of a cgo floor, "" otherwise
	Env       []string // added to the environment of every run

	Strace      string         // strace -f output, raw
	StraceCount string         // strace -f -c output, raw
	LDDebug     string         // LD_DEBUG=statistics output, raw ("" for a static program)
	Syscalls    map[string]int // system calls of the whole run, by name (strace -f)
	StackMaps   int            // mmap(..., MAP_STACK): a pthread stack with its guard page
	StackBytes  int64          // their total size
	Threads     int            // clone/clone3 with CLONE_THREAD
	Relocs      int            // LD_DEBUG: number of relocations (symbol lookups)
	RelRelocs   int            // LD_DEBUG: number of relative relocations
	LoaderCyc   int64          // LD_DEBUG: total startup time in dynamic loader, cycles
	Err         string         // why a tool failed on it
}

// TaxRun is one perf stat run.
type TaxRun struct {
	Round      int
	Key        string
	TaskClock  time.Duration
	PageFaults int64
	CtxSwitch  int64
	Err        string
}

// Tax is the tax experiment's results.
type Tax struct {
	Programs []*TaxProgram
	Runs     []TaxRun
	Rounds   int
	Notes    []string // tools missing here, and what was not measured for it
}

func taxPrograms(p *Programs) []*TaxProgram {
	out := []*TaxProgram{
		{Key: "go-floor", Name: "(7) pure Go (CGO_ENABLED=0)", Path: p.Plain},
		{Key: "cgo-runtime", Name: "runtime/cgo alone (no cdaemon), default build", Path: p.PlainCgo},
	}
	for _, r := range Recipes {
		if path := p.Cdaemon[r.Key]; path != "" {
			out = append(out, &TaxProgram{Key: floorKey(r.Key), Name: "(7c) cgo floor, " + r.Key, Path: path, Recipe: r.Key})
		}
	}
	// Not a recipe (a run-time setting of glibc), measured to size one
	// part of the tax: each thread that calls malloc first gets an arena
	// of its own (an mmap of 128 MB, two munmaps to align it, an
	// mprotect), and runtime/cgo mallocs the start of every thread.
	out = append(out, &TaxProgram{Key: "cgo-floor-arena1", Name: "(7c) cgo floor, default, `GLIBC_TUNABLES=glibc.malloc.arena_max=1`",
		Path: p.Cdaemon["default"], Recipe: "default", Env: []string{"GLIBC_TUNABLES=glibc.malloc.arena_max=1"}})
	return out
}

func taxEnv() []string {
	return append(launcherEnv(os.Environ()), "BENCH_FIFO=/dev/null", "BENCH_EXIT=1", "BENCH_APPROACH=foreground")
}

// runTool runs argv with env and a deadline; it returns stdout and stderr
// together.
func runTool(env []string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// tax runs the tax experiment.
func (r *runner) tax(res *Results, rounds int) error {
	tx := &Tax{Programs: taxPrograms(r.progs), Rounds: rounds}
	res.Tax = tx
	env := taxEnv()
	_, perfErr := exec.LookPath("perf")
	_, straceErr := exec.LookPath("strace")
	if perfErr != nil {
		tx.Notes = append(tx.Notes, "perf is not installed (`apt-get install linux-perf`): no task-clock or page faults")
	}
	if straceErr != nil {
		tx.Notes = append(tx.Notes, "strace is not installed (`apt-get install strace`): no system call counts")
	}
	for _, tp := range tx.Programs {
		if res.Config.stopped() {
			return errStopped
		}
		env := append(slices.Clone(env), tp.Env...)
		if straceErr == nil {
			tp.measureStrace(env, r.work)
		}
		out, err := runTool(append(slices.Clone(env), "LD_DEBUG=statistics"), tp.Path)
		if err != nil {
			tp.Err = err.Error()
		} else if strings.Contains(out, "runtime linker statistics") {
			tp.LDDebug = out
			tp.parseLDDebug()
		}
	}
	if perfErr != nil {
		return nil
	}
	out := filepath.Join(r.work, "perf.csv")
	began := time.Now()
	for round := 0; round < rounds; round++ {
		for k := range tx.Programs {
			if res.Config.stopped() {
				return errStopped
			}
			tp := tx.Programs[(k+round)%len(tx.Programs)]
			run := TaxRun{Round: round, Key: tp.Key}
			if _, err := runTool(append(slices.Clone(env), tp.Env...), "perf", "stat", "-x,", "-o", out,
				"-e", "task-clock,page-faults,context-switches", "--", tp.Path); err != nil {
				run.Err = err.Error()
			} else {
				b, _ := os.ReadFile(out)
				run.parsePerf(string(b))
			}
			tx.Runs = append(tx.Runs, run)
		}
		if w := res.Config.Progress; w != nil && ((round+1)%10 == 0 || round+1 == rounds) {
			fmt.Fprintf(w, "bench: tax: round %d/%d (%v)\n", round+1, rounds, time.Since(began).Round(time.Second))
		}
	}
	return nil
}

func (tp *TaxProgram) measureStrace(env []string, work string) {
	trace := filepath.Join(work, "strace-"+tp.Key)
	if _, err := runTool(env, "strace", "-f", "-o", trace, tp.Path); err != nil {
		tp.Err = err.Error()
		return
	}
	b, _ := os.ReadFile(trace)
	tp.Strace = string(b)
	count := filepath.Join(work, "strace-c-"+tp.Key)
	if _, err := runTool(env, "strace", "-f", "-c", "-o", count, tp.Path); err != nil {
		tp.Err = err.Error()
		return
	}
	b, _ = os.ReadFile(count)
	tp.StraceCount = string(b)
	tp.parseStrace()
}

// straceCall matches the system call of a line of strace -f: "PID
// name(" or "PID <... name resumed>" (counted once, at its start).
var straceCall = regexp.MustCompile(`^\d+\s+([a-z_0-9]+)\(`)

var stackMap = regexp.MustCompile(`mmap\(NULL, (\d+), [^)]*MAP_STACK`)

func (tp *TaxProgram) parseStrace() {
	tp.Syscalls = map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(tp.Strace))
	for sc.Scan() {
		line := sc.Text()
		m := straceCall.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		tp.Syscalls[m[1]]++
		if sm := stackMap.FindStringSubmatch(line); sm != nil {
			tp.StackMaps++
			n, _ := strconv.ParseInt(sm[1], 10, 64)
			tp.StackBytes += n
		}
		if (m[1] == "clone" || m[1] == "clone3") && strings.Contains(line, "CLONE_THREAD") {
			tp.Threads++
		}
	}
}

var ldStat = regexp.MustCompile(`(total startup time in dynamic loader|number of relocations|number of relative relocations): (\d+)`)

func (tp *TaxProgram) parseLDDebug() {
	seen := map[string]bool{}
	for _, m := range ldStat.FindAllStringSubmatch(tp.LDDebug, -1) {
		if seen[m[1]] {
			continue // the statistics at exit repeat the names
		}
		seen[m[1]] = true
		n, _ := strconv.ParseInt(m[2], 10, 64)
		switch m[1] {
		case "total startup time in dynamic loader":
			tp.LoaderCyc = n
		case "number of relocations":
			tp.Relocs = int(n)
		case "number of relative relocations":
			tp.RelRelocs = int(n)
		}
	}
}

// parsePerf reads perf stat -x, output: "value,unit,event,...".
func (run *TaxRun) parsePerf(out string) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		switch f[2] {
		case "task-clock":
			run.TaskClock = time.Duration(v * float64(time.Millisecond)) // msec
		case "page-faults":
			run.PageFaults = int64(v)
		case "context-switches":
			run.CtxSwitch = int64(v)
		}
	}
	if run.TaskClock == 0 {
		run.Err = "no task-clock in perf's output: " + strings.TrimSpace(out)
	}
}

// samples returns the perf runs of key: task-clock, page faults and
// context switches.
func (tx *Tax) samples(key string) (clock, faults, ctxsw []Value) {
	for _, run := range tx.Runs {
		if run.Key == key && run.Err == "" {
			clock = append(clock, Value{D: run.TaskClock})
			faults = append(faults, Value{D: time.Duration(run.PageFaults)})
			ctxsw = append(ctxsw, Value{D: time.Duration(run.CtxSwitch)})
		}
	}
	return
}

// TaxTable is the tax experiment's table: medians of perf stat, and the
// counts of strace and LD_DEBUG, each program beside the pure-Go floor.
func TaxTable(tx *Tax) string {
	var b strings.Builder
	pureClock, pureFaults, _ := tx.samples("go-floor")
	b.WriteString("| program | task-clock median | − (7) [95%] | page faults | − (7) | context switches | system calls | mmap | mprotect | MAP_STACK mmaps (MB) | threads created | relocations (relative) | loader, kcycles |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, tp := range tx.Programs {
		clock, faults, ctxsw := tx.samples(tp.Key)
		cells := []string{tp.Name}
		if len(clock) > 0 {
			mc, mf := percentile(clock, 0.5).D, percentile(faults, 0.5).D
			cells = append(cells, ms(mc))
			if len(pureClock) > 0 && tp.Key != "go-floor" {
				lo, hi := diffCI(clock, pureClock)
				cells = append(cells, fmt.Sprintf("%+.2f [%+.2f, %+.2f]", (mc-percentile(pureClock, 0.5).D).Seconds()*1e3,
					lo.Seconds()*1e3, hi.Seconds()*1e3))
				cells = append(cells, strconv.FormatInt(int64(mf), 10), fmt.Sprintf("%+d", int64(mf-percentile(pureFaults, 0.5).D)))
			} else {
				cells = append(cells, "–", strconv.FormatInt(int64(mf), 10), "–")
			}
			cells = append(cells, strconv.FormatInt(int64(percentile(ctxsw, 0.5).D), 10))
		} else {
			cells = append(cells, "–", "–", "–", "–", "–")
		}
		if tp.Syscalls != nil {
			total := 0
			for _, n := range tp.Syscalls {
				total += n
			}
			cells = append(cells, strconv.Itoa(total), strconv.Itoa(tp.Syscalls["mmap"]), strconv.Itoa(tp.Syscalls["mprotect"]),
				fmt.Sprintf("%d (%.0f)", tp.StackMaps, float64(tp.StackBytes)/(1<<20)), strconv.Itoa(tp.Threads))
		} else {
			cells = append(cells, "–", "–", "–", "–", "–")
		}
		if tp.LDDebug != "" {
			cells = append(cells, fmt.Sprintf("%d (%d)", tp.Relocs, tp.RelRelocs), fmt.Sprintf("%.0f", float64(tp.LoaderCyc)/1000))
		} else {
			cells = append(cells, "static: no loader", "–")
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}

// taxFiles are the raw outputs of the tax experiment, by file name under
// results/tax/.
func taxFiles(tx *Tax) map[string]string {
	files := map[string]string{}
	var csv strings.Builder
	csv.WriteString("round,program,task_clock_us,page_faults,context_switches,error\n")
	for _, run := range tx.Runs {
		fmt.Fprintf(&csv, "%d,%s,%d,%d,%d,%q\n", run.Round, run.Key, run.TaskClock.Microseconds(), run.PageFaults, run.CtxSwitch, run.Err)
	}
	files["perf-stat.csv"] = csv.String()
	for _, tp := range tx.Programs {
		head := fmt.Sprintf("# %s: %s\n# environment: BENCH_FIFO=/dev/null BENCH_EXIT=1 BENCH_APPROACH=foreground %s\n",
			tp.Name, filepath.Base(tp.Path), strings.Join(tp.Env, " "))
		if tp.Strace != "" {
			files["strace-"+tp.Key+".txt"] = head + "# strace -f\n" + tp.Strace
			files["strace-c-"+tp.Key+".txt"] = head + "# strace -f -c\n" + tp.StraceCount
		}
		if tp.LDDebug != "" {
			files["ld-debug-"+tp.Key+".txt"] = head + "# LD_DEBUG=statistics\n" + tp.LDDebug
		}
		if tp.Err != "" {
			files["error-"+tp.Key+".txt"] = head + tp.Err + "\n"
		}
	}
	return files
}
