package bench

import (
	"encoding/csv"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The harness is tested the way it measures: real launchers on a real pty,
// in a session of their own, through /proc. Broken contenders (cprog's
// keep-tty, left-behind and late modes) prove that each check can fail.

var (
	progs *Programs
	term  *Terminal
)

func TestMain(m *testing.M) {
	// The whole test binary runs as the leader of a session with a pty
	// for its terminal, as benchrun does (see session.go).
	EnterSession()
	var err error
	if term, err = OpenTerminal(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "cdaemon-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if progs, err = Build(".", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	term.Close()
	os.RemoveAll(dir)
	if left := Descendants(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "processes left behind by the tests: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

func contender(t *testing.T, key string) Contender {
	t.Helper()
	for _, c := range Contenders {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("no contender %q", key)
	return Contender{}
}

// run runs the start-up experiment for cs, n rounds, no warm-up.
func run(t *testing.T, n int, cs ...Contender) *Results {
	t.Helper()
	res, err := Run(progs, term, Config{Rounds: n, Timeout: 20 * time.Second, Experiments: []string{"start"},
		Work: t.TempDir(), contenders: cs})
	if err != nil {
		t.Fatal(err)
	}
	if left := Descendants(); len(left) > 0 {
		t.Fatalf("processes left behind: %v", left)
	}
	return res
}

func trialsOf(res *Results, key string) []Trial {
	var out []Trial
	for _, t := range res.Trials {
		if t.Contender == key {
			out = append(out, t)
		}
	}
	return out
}

// TestGoodDaemon: cdaemon passes every check, its launcher exits after
// ready, one execve and one init() per start, and every column is filled.
func TestGoodDaemon(t *testing.T) {
	res := run(t, 3, contender(t, "cdaemon"))
	ts := trialsOf(res, "cdaemon")
	if len(ts) != 3 {
		t.Fatalf("want 3 trials, got %d", len(ts))
	}
	for _, tr := range ts {
		switch {
		case tr.Failed():
			t.Fatalf("start failed: %s", tr.Err)
		case tr.ReadyTimeout || !tr.Exited:
			t.Fatalf("start reached the timeout: %+v", tr)
		case !tr.Checks.Done || tr.Checks.Failed():
			t.Errorf("checks: %+v", tr.Checks)
		case tr.Checks.SessionLeader || tr.Checks.KeptFDs != 0:
			t.Errorf("cdaemon's daemon is a session leader or kept the inherited fd: %+v", tr.Checks)
		case tr.Order == ExitBefore:
			// Its launcher exits only after READY, which the daemon
			// sends after the ready line: "before" would be a harness bug.
			t.Errorf("cdaemon's launcher seen exiting before ready: %+v", tr)
		case tr.Ready <= 0 || tr.Exit < tr.Ready:
			t.Errorf("times: ready %v, exit %v", tr.Ready, tr.Exit)
		case !tr.CPUKnown || tr.CPU <= 0 || tr.RSSKB <= 0:
			t.Errorf("CPU %v (known %v), RSS %d kB", tr.CPU, tr.CPUKnown, tr.RSSKB)
		case tr.Inits != 1:
			t.Errorf("init() ran %d times, want 1", tr.Inits)
		case res.ExecNote == "" && tr.Execs != 1:
			t.Errorf("execve calls %d, want 1 (the launcher's own)", tr.Execs)
		case len(tr.Stages) != 4 || !slices.IsSorted(tr.Stages) || tr.Stages[0] <= 0 || tr.Stages[3] > tr.Ready:
			t.Errorf("stage times %v, ready %v", tr.Stages, tr.Ready)
		}
	}
	if res.ExecNote != "" {
		t.Logf("execve not counted here: %s", res.ExecNote)
	}
	s := res.Summaries("start", StartLevel)[0]
	if s.Checked != 3 || s.AnyFailure != 0 || s.Failed != 0 {
		t.Errorf("summary: %+v", s)
	}
}

// TestCatchesStdioOnTerminal: daemon(0, 1) leaves fds 0-2 on the pty.
func TestCatchesStdioOnTerminal(t *testing.T) {
	res := run(t, 2, keepTTY)
	for _, tr := range trialsOf(res, keepTTY.Key) {
		if tr.Failed() {
			t.Fatalf("start failed: %s", tr.Err)
		}
		if !tr.Checks.Done || tr.Checks.StdioNull || !tr.Checks.Failed() {
			t.Errorf("stdio on the terminal not caught: %+v", tr.Checks)
		}
		if !strings.Contains(tr.Checks.Problem, "fd 0 is "+term.Name) {
			t.Errorf("problem %q does not name the terminal %s", tr.Checks.Problem, term.Name)
		}
		if !tr.Checks.Reparented || !tr.Checks.OwnSession || !tr.Checks.NoTTY || !tr.Checks.NothingLeft {
			t.Errorf("a check other than stdio failed: %+v", tr.Checks)
		}
	}
	// Counted in the table, never dropped.
	s := res.Summaries("start", StartLevel)[0]
	if s.StdioNotNull != 2 || s.AnyFailure != 2 || len(s.readySamples) != 2 {
		t.Errorf("summary: stdio %d, failures %d, timed %d; want 2, 2, 2", s.StdioNotNull, s.AnyFailure, len(s.readySamples))
	}
	if table := CorrectnessTable(res); !strings.Contains(table, "| 2/2 | 0/2 | 2/2 |") {
		t.Errorf("the correctness table does not show the failures:\n%s", table)
	}
}

// TestCatchesLeftBehind: the launcher's extra child is still alive after
// the settle time, named in the problem, and killed afterwards.
func TestCatchesLeftBehind(t *testing.T) {
	res := run(t, 1, leftBehind)
	tr := trialsOf(res, leftBehind.Key)[0]
	if tr.Failed() {
		t.Fatalf("start failed: %s", tr.Err)
	}
	if tr.Checks.NothingLeft || !tr.Checks.Failed() {
		t.Errorf("process left behind not caught: %+v", tr.Checks)
	}
	if !strings.Contains(tr.Checks.Problem, "left behind") || !strings.Contains(tr.Checks.Problem, "(cprog)") {
		t.Errorf("problem %q does not name the process", tr.Checks.Problem)
	}
	if !tr.Checks.StdioNull || !tr.Checks.Reparented {
		t.Errorf("the daemon itself should pass: %+v", tr.Checks)
	}
	// run() already failed the test if anything of it survived.
}

// TestOrderNeverGuessed: a daemon that reports ready only once its launcher
// is gone is never counted as ready before the launcher's exit.
func TestOrderNeverGuessed(t *testing.T) {
	res := run(t, 4, lateReady)
	for _, tr := range trialsOf(res, lateReady.Key) {
		if tr.Failed() {
			t.Fatalf("start failed: %s", tr.Err)
		}
		if tr.Order != ExitBefore && tr.Order != OrderUnknown {
			t.Errorf("launcher exit said to be %v ready; it was before", tr.Order)
		}
	}
	s := res.Summaries("start", StartLevel)[0]
	if s.Before+s.Unknown != 4 {
		t.Errorf("summary: %d before, %d undecidable; want 4 in all", s.Before, s.Unknown)
	}
}

// TestExecCounts: the re-exec peers exec once per image.
func TestExecCounts(t *testing.T) {
	cs := []Contender{contender(t, "go-daemon"), contender(t, "godaemon"), contender(t, "cdaemonize"), contender(t, "daemon3")}
	res := run(t, 1, cs...)
	if res.ExecNote != "" {
		t.Skipf("execve calls not counted here: %s", res.ExecNote)
	}
	want := map[string]int{"go-daemon": 2, "godaemon": 3, "cdaemonize": 2, "daemon3": 1}
	inits := map[string]int{"go-daemon": 2, "godaemon": 3, "cdaemonize": 1, "daemon3": 0}
	for _, tr := range res.Trials {
		if tr.Failed() {
			t.Errorf("%s: %s", tr.Contender, tr.Err)
			continue
		}
		if tr.Execs != want[tr.Contender] || tr.Inits != inits[tr.Contender] {
			t.Errorf("%s: %d execve and %d init() runs, want %d and %d", tr.Contender, tr.Execs, tr.Inits, want[tr.Contender], inits[tr.Contender])
		}
		if tr.Order == ExitAfter && tr.Contender != "cdaemonize" {
			t.Logf("%s: launcher exited after ready this time", tr.Contender)
		}
	}
}

// TestFloorIsNotChecked: a floor keeps running; it is timed, not checked.
func TestFloorIsNotChecked(t *testing.T) {
	res := run(t, 1, contender(t, "c-floor"))
	tr := res.Trials[0]
	if tr.Failed() || tr.Checks.Done || tr.Exited || tr.Ready <= 0 {
		t.Errorf("floor trial: %+v", tr)
	}
}

// TestFailedStartCounted: a launcher that refuses its environment is a
// failed start, with the launcher's message, left out of the timings.
func TestFailedStartCounted(t *testing.T) {
	bad := contender(t, "cdaemon")
	bad.Key = "bad-umask"
	bad.Env = append(slices.Clone(bad.Env), "CDAEMON_UMASK=999")
	res := run(t, 1, bad)
	tr := res.Trials[0]
	if !tr.Failed() || !strings.Contains(tr.Err, "exited with status 64") || !strings.Contains(tr.Err, "CDAEMON_UMASK") {
		t.Errorf("want a failed start naming the status and the variable, got %q", tr.Err)
	}
	s := res.Summaries("start", StartLevel)[0]
	if s.Failed != 1 || len(s.readySamples) != 0 {
		t.Errorf("summary: %d failed, %d timed", s.Failed, len(s.readySamples))
	}
	if !strings.Contains(Report(res), "failed start: launcher exited with status 64") {
		t.Error("the report does not list the failed start")
	}
}

// TestTimeoutIsCensored: a daemon still not ready at the timeout counts as
// at least the timeout, and its processes are killed.
func TestTimeoutIsCensored(t *testing.T) {
	slow := contender(t, "cdaemon")
	slow.Key = "slow"
	slow.Env = append(slices.Clone(slow.Env), "BENCH_INIT_WORK=30s")
	res, err := Run(progs, term, Config{Rounds: 1, Timeout: 300 * time.Millisecond, Experiments: []string{"start"},
		Work: t.TempDir(), contenders: []Contender{slow}})
	if err != nil {
		t.Fatal(err)
	}
	tr := res.Trials[0]
	if tr.Failed() || !tr.ReadyTimeout || tr.Ready != 300*time.Millisecond || tr.Exited {
		t.Errorf("trial: %+v", tr)
	}
	if s := res.Summaries("start", StartLevel)[0]; !s.Ready.Censored || s.Timeouts != 1 {
		t.Errorf("summary median %+v, timeouts %d", s.Ready, s.Timeouts)
	}
	if left := Descendants(); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
}

// TestPrefork: one respawn per master, answered by the replacement; the
// master with a spare reports the spare's memory, the others none.
func TestPrefork(t *testing.T) {
	res, err := Run(progs, term, Config{Respawns: 1, Timeout: 20 * time.Second, Experiments: []string{"prefork"},
		Work: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Respawns) != 3 || len(res.Masters) != 3 {
		t.Fatalf("respawns %+v, masters %+v", res.Respawns, res.Masters)
	}
	for _, m := range res.Masters {
		if spare := m.SpareRSSKB > 0 && m.SparePSSKB > 0 && m.SparePSSKB <= m.SpareRSSKB; spare != (m.Key == "cdaemon-spare") {
			t.Errorf("master %s: a spare's RSS %d kB, Pss %d kB", m.Key, m.SpareRSSKB, m.SparePSSKB)
		}
	}
	for _, r := range res.Respawns {
		if r.Err != "" || r.Latency <= 0 || r.Ready <= 0 || r.Ready > r.Latency {
			t.Errorf("respawn: %+v", r)
		}
	}
	for _, m := range res.Masters {
		if m.Err != "" || m.RSSKB <= 0 || m.Threads < 1 {
			t.Errorf("master: %+v", m)
		}
		if m.Key == "cdaemon" && m.Threads != 1 {
			t.Errorf("the pre-runtime master has %d threads, want 1 (it never starts Go)", m.Threads)
		}
	}
	if left := Descendants(); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
}

// TestUpgrade: one upgrade in place of each kind under load, v1 to v2:
// no failed connection, no stale answer, the new version answering before
// the old generation is gone, the prefork master's pid kept and the single
// process's changed, and nothing left behind.
func TestUpgrade(t *testing.T) {
	res, err := Run(progs, term, Config{Upgrades: 1, Timeout: 20 * time.Second, Experiments: []string{"upgrade"},
		Work: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upgrades) != 2 || len(res.UpgradeStart) != 0 {
		t.Fatalf("upgrades %+v, start failures %v", res.Upgrades, res.UpgradeStart)
	}
	kinds := map[string]bool{}
	for _, u := range res.Upgrades {
		kinds[u.Kind] = true
		if u.Err != "" || u.From != "v1" || u.To != "v2" || u.Failed != 0 || u.Stale != 0 || u.Conns <= upgradeAfter ||
			u.NewServes <= 0 || u.OldGone <= 0 || u.OldGone > 20*time.Second {
			t.Errorf("upgrade: %+v", u)
		}
		if kept := u.Kind == "prefork" && u.MasterKept && u.NewPID == u.OldPID; kept != (u.Kind == "prefork") {
			t.Errorf("prefork master not kept: %+v", u)
		}
		if u.Kind == "single" && (u.NewPID == u.OldPID || u.NewPID <= 0) {
			t.Errorf("single process: pid %d after the upgrade, was %d", u.NewPID, u.OldPID)
		}
	}
	if !kinds["prefork"] || !kinds["single"] {
		t.Errorf("kinds upgraded: %v", kinds)
	}
	targets := res.Targets()
	if last := targets[len(targets)-1]; !strings.HasPrefix(last.What, "upgrade under load") || last.Met == nil || !*last.Met {
		t.Errorf("target %+v", last)
	}
	if md := Report(res); !strings.Contains(md, "## Upgrade in place under load") {
		t.Errorf("no upgrade table in the report")
	}
	if rows := upgradeRows(res); len(rows) != 3 {
		t.Errorf("upgrades.csv rows %v", rows)
	}
	if left := Descendants(); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
}

// TestUpgradeCatchesStale: when the "new" build is the old one (v1 over
// v1), every answer after the switch says v1: the upgrade is not counted
// as done (no answer from v2), its stale answers are counted, and the
// target is missed.
func TestUpgradeCatchesStale(t *testing.T) {
	p := *progs
	p.Versioned[1] = p.Versioned[0]
	res, err := Run(&p, term, Config{Upgrades: 1, Timeout: 20 * time.Second, Experiments: []string{"upgrade"},
		Work: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upgrades) != 2 {
		t.Fatalf("upgrades %+v", res.Upgrades)
	}
	for _, u := range res.Upgrades {
		if u.Err != "no answer from v2" || u.Stale < upgradeAfter {
			t.Errorf("upgrade of v1 to v1: %+v; want no answer from v2 and %d stale answers or more", u, upgradeAfter)
		}
	}
	targets := res.Targets()
	if last := targets[len(targets)-1]; last.Met == nil || *last.Met {
		t.Errorf("target %+v, want missed", last)
	}
	if left := Descendants(); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
}

// TestWrite: every result file is written and readable.
func TestWrite(t *testing.T) {
	res := run(t, 2, contender(t, "cdaemon"), contender(t, "go-floor"), contender(t, "cgo-floor"), contender(t, "daemon3"), contender(t, "c-floor"))
	dir := t.TempDir()
	files, err := Write(res, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"latest.md", "headline.md", "trials.csv", "summary.csv", "respawns.csv", "upgrades.csv", "start.svg"} {
		if !slices.Contains(files, filepath.Join(dir, name)) {
			t.Errorf("%s not written (%v)", name, files)
		}
	}
	f, err := os.Open(filepath.Join(dir, "trials.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 1+len(res.Trials) {
		t.Errorf("trials.csv: %d rows (err %v), want a header and %d", len(rows), err, len(res.Trials))
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "start.svg"))
	if !strings.Contains(string(svg), "<svg") {
		t.Errorf("start.svg is not an SVG: %.80q", svg)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
	for _, want := range []string{"## Targets", "(1) − (7c)", "## Build recipes", "## The binaries", "the cgo start-up tax: (7c) − (7)", "### Where (1)'s time goes", res.Machine.Kernel} {
		if !strings.Contains(string(md), want) {
			t.Errorf("latest.md lacks %q", want)
		}
	}
}

// TestWithoutCgroups: the fallback for machines without a writable cgroup
// v2 hierarchy (the harness's descendants, CPU from RUSAGE_CHILDREN) still
// measures, checks and cleans up.
func TestWithoutCgroups(t *testing.T) {
	res, err := Run(progs, term, Config{Rounds: 2, Timeout: 20 * time.Second, Experiments: []string{"start"},
		Work: t.TempDir(), noCgroup: true, contenders: []Contender{contender(t, "godaemon"), leftBehind}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Tree, "descendants") {
		t.Errorf("tree %q, want the fallback", res.Tree)
	}
	for _, tr := range res.Trials {
		if tr.Failed() || !tr.Checks.Done || !tr.CPUKnown || tr.CPU <= 0 {
			t.Errorf("%s: %+v", tr.Contender, tr)
		}
		if bad := tr.Contender == leftBehind.Key; tr.Checks.NothingLeft == bad {
			t.Errorf("%s: nothing left behind = %v: %s", tr.Contender, tr.Checks.NothingLeft, tr.Checks.Problem)
		}
	}
	if left := Descendants(); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
}

// TestTax: one round of the tax experiment. What it must show whatever
// the load: the pure-Go floor has no loader and maps no pthread stack;
// the default cgo floor runs the loader (relocations), maps a glibc
// thread stack per thread it creates through pthread; every perf run
// counted task-clock and page faults; the raw files are written.
func TestTax(t *testing.T) {
	for _, tool := range []string{"perf", "strace"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	res, err := Run(progs, term, Config{TaxRounds: 1, Experiments: []string{"tax"}, Work: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tx := res.Tax
	if tx == nil || len(tx.Runs) != len(tx.Programs) {
		t.Fatalf("tax: %+v", tx)
	}
	for _, run := range tx.Runs {
		if run.Err != "" || run.TaskClock <= 0 || run.PageFaults <= 0 {
			t.Errorf("perf run %+v", run)
		}
	}
	byKey := map[string]*TaxProgram{}
	for _, tp := range tx.Programs {
		if tp.Err != "" {
			t.Errorf("%s: %s", tp.Key, tp.Err)
		}
		byKey[tp.Key] = tp
	}
	pure, cgo := byKey["go-floor"], byKey["cgo-floor"]
	if pure == nil || cgo == nil {
		t.Fatalf("programs %v", slices.Collect(maps.Keys(byKey)))
	}
	if pure.LDDebug != "" || pure.StackMaps != 0 || pure.Threads == 0 || pure.Syscalls["execve"] != 1 {
		t.Errorf("pure floor: loader output %d bytes, %d stack maps, %d threads, %d execve",
			len(pure.LDDebug), pure.StackMaps, pure.Threads, pure.Syscalls["execve"])
	}
	if cgo.Relocs == 0 || cgo.LoaderCyc == 0 || cgo.StackMaps == 0 || cgo.StackMaps > cgo.Threads {
		t.Errorf("cgo floor: %d relocations, %d loader cycles, %d stack maps for %d threads",
			cgo.Relocs, cgo.LoaderCyc, cgo.StackMaps, cgo.Threads)
	}
	if st := byKey["cgo-floor@static"]; st == nil || st.LDDebug != "" {
		t.Errorf("the static cgo floor ran a loader: %+v", st)
	}
	dir := t.TempDir()
	if _, err := Write(res, dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"perf-stat.csv", "strace-go-floor.txt", "strace-c-cgo-floor.txt", "ld-debug-cgo-floor.txt"} {
		if b, err := os.ReadFile(filepath.Join(dir, "tax", name)); err != nil || len(b) == 0 {
			t.Errorf("tax/%s: %v, %d bytes", name, err, len(b))
		}
	}
	if md, _ := os.ReadFile(filepath.Join(dir, "latest.md")); !strings.Contains(string(md), "## Where the cgo tax goes") {
		t.Error("latest.md lacks the tax section")
	}
}
