package bench

import (
	"fmt"
	"math"
	"strings"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func (v Value) String() string {
	if v.Censored {
		return "≥ " + ms(v.D)
	}
	return ms(v.D)
}

func ratioCell(r, lo, hi float64) string {
	if math.IsNaN(r) {
		return "–"
	}
	if math.IsNaN(lo) {
		return fmt.Sprintf("×%.2f", r)
	}
	return fmt.Sprintf("×%.2f [%.2f–%.2f]", r, lo, hi)
}

func frac(k, n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%d/%d", k, n)
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// Target is one of the project's performance targets, as measured.
type Target struct {
	What     string
	Measured string
	Met      *bool // nil: not measured in this run
}

func (t Target) verdict() string {
	switch {
	case t.Met == nil:
		return "not measured"
	case *t.Met:
		return "**met**"
	}
	return "**missed**"
}

func (res *Results) find(exp, key string) (Summary, bool) {
	lv := StartLevel
	for _, s := range res.Summaries(exp, lv) {
		if s.Contender.Key == key && len(s.readySamples) > 0 {
			return s, true
		}
	}
	return Summary{}, false
}

// Targets evaluates the targets of the benchmark issues on res: medians,
// one run, this machine. The peers are their own pure-Go binaries (issue
// 14); (1) is measured with the default build and with the recommended
// one.
func (res *Results) Targets() []Target {
	var out []Target
	met := func(ok bool) *bool { return &ok }
	rec, _ := recipe(RecommendedRecipe)
	for _, build := range []struct{ key, label string }{
		{"cdaemon", "(1), default build"},
		{cdaemonKey(rec.Key), "(1), recommended build (" + rec.Key + ")"},
	} {
		cd, okCd := res.find("start", build.key)
		for _, peer := range []struct {
			key, name string
			limit     float64
		}{{"go-daemon", "(4) go-daemon, pure Go", 0.65}, {"godaemon", "(5) godaemon, pure Go", 0.45}} {
			t := Target{What: fmt.Sprintf("%s: time to ready at most %.2f of %s's", build.label, peer.limit, peer.name)}
			if p, ok := res.find("start", peer.key); ok && okCd {
				r := float64(cd.Ready.D) / float64(p.Ready.D)
				lo, hi := ratioCI(cd.readySamples, p.readySamples)
				t.Measured = fmt.Sprintf("%s / %s ms = %.2f [95%%: %.2f–%.2f]", cd.Ready, p.Ready, r, lo, hi)
				t.Met = met(r <= peer.limit)
			}
			out = append(out, t)
		}
	}
	cd, okCd := res.find("start", "cdaemon")
	t := Target{What: "(1)'s launcher never exits before ready"}
	if okCd {
		t.Measured = fmt.Sprintf("%d of %d exits seen before ready (%d ?, undecidable)", cd.Before, cd.Exited, cd.Unknown)
		t.Met = met(cd.Before == 0 && cd.Exited == cd.Runs-cd.Failed)
	}
	out = append(out, t)

	for _, build := range []struct{ key, label string }{{rec.Key, "recommended build (" + rec.Key + ")"}, {"default", "default build, for reference"}} {
		t = Target{What: "cgo start-up tax, (7c) − (7), at most 0.3 of the pure-Go floor (7): " + build.label}
		if tx, ok := res.tax(build.key); ok {
			t.Measured = fmt.Sprintf("%s − %s = %s ms [95%%: %s, %s] = %.2f of (7) [95%%: %.2f, %.2f]", tx.cgo.Ready, tx.pure.Ready,
				ms(tx.diff), ms(tx.diffLo), ms(tx.diffHi), tx.frac, tx.fracLo, tx.fracHi)
			t.Met = met(tx.frac <= 0.3)
		}
		out = append(out, t)
	}

	t = Target{What: "(1) − (7c), cdaemon's cost over the same binary not daemonized, at most 1.5 × ((6) − (10)), daemon(3)'s over the C floor"}
	gf, ok7 := res.find("start", "cgo-floor")
	d3, ok6 := res.find("start", "daemon3")
	cf, ok10 := res.find("start", "c-floor")
	if okCd && ok7 && ok6 && ok10 {
		ours, theirs := cd.Ready.D-gf.Ready.D, d3.Ready.D-cf.Ready.D
		t.Measured = fmt.Sprintf("%s − %s = %s ms against 1.5 × (%s − %s) = %s ms",
			cd.Ready, gf.Ready, ms(ours), d3.Ready, cf.Ready, ms(theirs*3/2))
		t.Met = met(ours <= theirs*3/2)
	}
	out = append(out, t)

	t = Target{What: "pre-runtime respawn at least 2× faster than fork+exec"}
	pre, exe := res.respawnSummary("cdaemon"), res.respawnSummary("exec")
	if pre.n > 0 && exe.n > 0 {
		r := float64(exe.latency.D) / float64(pre.latency.D)
		t.Measured = fmt.Sprintf("%s / %s ms = ×%.2f", exe.latency, pre.latency, r)
		t.Met = met(r >= 2)
	}
	out = append(out, t)

	t = Target{What: "respawn with one spare (CDAEMON_SPARES=1) at least 5× faster than fork+exec (issue 16)"}
	spare := res.respawnSummary("cdaemon-spare")
	if spare.n > 0 && exe.n > 0 {
		r := float64(exe.latency.D) / float64(spare.latency.D)
		lo, hi := ratioCI(exe.samples, spare.samples)
		t.Measured = fmt.Sprintf("%s / %s ms = ×%.2f [%.2f–%.2f]", exe.latency, spare.latency, r, lo, hi)
		t.Met = met(lo >= 5)
	}
	out = append(out, t)

	// The same without the kernel's part: both masters learn of a death
	// only once the kernel has torn the old worker down (SIGCHLD and the
	// pidfd come at its very end), a time no master controls, which the
	// ratio above counts on both sides. This row is the masters' own part.
	t = Target{What: "the same, the masters' part only (after the old worker was gone): one spare at least 5× faster than fork+exec"}
	if spare.n > 0 && exe.n > 0 {
		a, b := percentile(exe.afters, 0.5), percentile(spare.afters, 0.5)
		r := float64(a.D) / float64(b.D)
		lo, hi := ratioCI(exe.afters, spare.afters)
		t.Measured = fmt.Sprintf("%s / %s ms = ×%.2f [%.2f–%.2f]", a, b, r, lo, hi)
		t.Met = met(lo >= 5)
	}
	out = append(out, t)

	t = Target{What: "upgrade under load, prefork master and single process (issue 16): 0 failed connections"}
	if res.Ran["upgrade"] {
		var parts []string
		failed, ok := 0, true
		for _, k := range UpgradeKinds {
			s := res.upgradeSummary(k.Key)
			failed += s.failed
			ok = ok && s.n > 0 && s.errs == 0 && s.stale == 0 && res.UpgradeStart[k.Key] == ""
			parts = append(parts, fmt.Sprintf("%s: %d of %d connections failed in %d upgrades (%d did not complete, %d stale answers)",
				k.Key, s.failed, s.conns, s.n+s.errs, s.errs, s.stale))
		}
		t.Measured = strings.Join(parts, "; ")
		t.Met = met(ok && failed == 0)
	}
	return append(out, t)
}

type upgradeStats struct {
	n, errs, conns, failed, stale, kept int
	serves, gone                        []Value
	firstErr, firstFail                 string
}

// upgradeSummary gathers the completed upgrades of one kind; those that
// did not complete are counted in errs, their connections all the same.
func (res *Results) upgradeSummary(kind string) upgradeStats {
	var s upgradeStats
	for _, u := range res.Upgrades {
		if u.Kind != kind {
			continue
		}
		s.conns += u.Conns
		s.failed += u.Failed
		s.stale += u.Stale
		if u.FirstFail != "" && s.firstFail == "" {
			s.firstFail = u.FirstFail
		}
		if u.Err != "" {
			s.errs++
			if s.firstErr == "" {
				s.firstErr = u.Err
			}
			continue
		}
		s.n++
		if u.MasterKept {
			s.kept++
		}
		s.serves = append(s.serves, Value{D: u.NewServes})
		s.gone = append(s.gone, Value{D: u.OldGone})
	}
	return s
}

// pctCell is the p-th percentile of v with its 95% bootstrap interval.
func pctCell(v []Value, p float64) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := percentileCI(v, p)
	return fmt.Sprintf("%s [%s–%s]", percentile(v, p), ms(lo), ms(hi))
}

// UpgradeTable is the upgrade experiment's table.
func UpgradeTable(res *Results) string {
	var b strings.Builder
	b.WriteString("| daemon | USR2 to the new version answering, median [95%] | p90 [95%] | USR2 to the old generation gone, median [95%] | p90 [95%] | connections | failed | stale answers | master pid kept | upgrades |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, k := range UpgradeKinds {
		s := res.upgradeSummary(k.Key)
		if why := res.UpgradeStart[k.Key]; why != "" && s.n+s.errs == 0 {
			fmt.Fprintf(&b, "| %s | failed: %s |||||||||\n", k.Name, cell(why))
			continue
		}
		kept := "–"
		if k.Key == "prefork" {
			kept = fmt.Sprintf("%d/%d", s.kept, s.n)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d | %d | %d | %s | %d/%d |\n", k.Name,
			pctCell(s.serves, 0.5), pctCell(s.serves, 0.9), pctCell(s.gone, 0.5), pctCell(s.gone, 0.9),
			s.conns, s.failed, s.stale, kept, s.n, s.n+s.errs)
	}
	return b.String()
}

type respawnStats struct {
	n, failed       int
	latency, p90    Value
	ready, readyP90 Value
	dead            Value   // median time until the old worker was gone
	after           Value   // median of latency minus that: the master's part
	samples, afters []Value // latencies, and latencies after the death
	firstErr        string
}

func (res *Results) respawnSummary(key string) respawnStats {
	var s respawnStats
	var ready, dead []Value
	for _, r := range res.Respawns {
		if r.Master != key {
			continue
		}
		if r.Err != "" {
			s.failed++
			if s.firstErr == "" {
				s.firstErr = r.Err
			}
			continue
		}
		s.n++
		s.samples = append(s.samples, Value{D: r.Latency})
		s.afters = append(s.afters, Value{D: r.Latency - r.Dead})
		ready = append(ready, Value{D: r.Ready})
		dead = append(dead, Value{D: r.Dead})
	}
	s.latency, s.p90 = percentile(s.samples, 0.5), percentile(s.samples, 0.9)
	s.ready, s.readyP90 = percentile(ready, 0.5), percentile(ready, 0.9)
	s.dead, s.after = percentile(dead, 0.5), percentile(s.afters, 0.5)
	return s
}

// Report renders the results as the Markdown of results/latest.md.
func Report(res *Results) string {
	var b strings.Builder
	cfg := res.Config
	fmt.Fprintf(&b, "# cdaemon benchmark results\n\n")
	if res.Stopped {
		b.WriteString("**Interrupted: partial results.**\n\n")
	}
	fmt.Fprintf(&b, "- date: %s, took %v\n", res.Began.UTC().Format("2006-01-02 15:04 MST"), res.Took.Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s\n", res.Machine)
	fmt.Fprintf(&b, "- C compiler: %s; Ruby: %s\n", res.Machine.CC, res.Machine.Ruby)
	fmt.Fprintf(&b, "- command: `make bench` (`cd bench && go run ./cmd/benchrun`); %d rounds of the start-up experiment, %d per level of the scaling ones, %d respawns per master, %d upgrades per daemon; %d warm-up round(s) discarded; a start not ready within %v counts as at least that\n",
		cfg.Rounds, cfg.ScaleRounds, cfg.Respawns, cfg.Upgrades, cfg.Warmup, cfg.Timeout)
	fmt.Fprintf(&b, "- the processes of a launch are held in %s", res.Tree)
	if res.TreeNote != "" {
		fmt.Fprintf(&b, "; no cgroup because: %s", res.TreeNote)
	}
	b.WriteString("\n")
	if res.ExecNote == "" {
		b.WriteString("- execve calls: counted by the kernel's process events connector (every exec of the launch's process tree)\n")
	} else {
		fmt.Fprintf(&b, "- execve calls: not counted (%s)\n", res.ExecNote)
	}
	var limits []string
	for _, e := range Experiments {
		if v, ok := res.NoFile[e]; ok && v > 0 {
			limits = append(limits, fmt.Sprintf("%s %d", e, v))
		}
	}
	if len(limits) > 0 {
		fmt.Fprintf(&b, "- RLIMIT_NOFILE of the launchers: %s\n", strings.Join(limits, ", "))
	}

	b.WriteString("\n## Targets\n\n| target | measured (medians) | |\n|---|---|---|\n")
	for _, t := range res.Targets() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.What, cell(t.Measured), t.verdict())
	}

	if res.Ran["start"] {
		b.WriteString("\n## Start-up: from the launcher's exec to the daemon's ready line\n\n")
		b.WriteString(StartTable(res))
		b.WriteString("\n" + startLegend + "\n")
		b.WriteString("\n![time to ready, every start](start.svg)\n")
		b.WriteString(breakdownSection(res))
		b.WriteString("\n## Build recipes: the cgo start-up tax, and cdaemon built each way\n\n")
		b.WriteString("The same start-up experiment (the same interleaved rounds): `cmd/app-cdaemon` built with each recipe, started as the cgo floor (no `CDAEMON`) and as (1).\n\n")
		b.WriteString(RecipeTable(res))
		b.WriteString("\n" + recipeLegend + "\n")
		b.WriteString("\n## Correctness of the daemon, checked from /proc\n\n")
		b.WriteString(CorrectnessTable(res))
		b.WriteString("\n" + correctnessLegend + "\n")
	}
	if len(res.Binaries) > 0 {
		b.WriteString("\n## The binaries\n\n")
		b.WriteString(BinaryTable(res))
		b.WriteString("\n" + binaryLegend + "\n")
	}
	if res.Ran["tax"] && res.Tax != nil {
		fmt.Fprintf(&b, "\n## Where the cgo tax goes: perf stat, strace, LD_DEBUG\n\n")
		b.WriteString(TaxTable(res.Tax))
		fmt.Fprintf(&b, "\n"+taxLegend+"\n", res.Tax.Rounds)
		for _, n := range res.Tax.Notes {
			b.WriteString("\n- " + n + "\n")
		}
	}
	if res.Ran["init"] {
		b.WriteString("\n## Scaling with the work done in `init()`\n\n")
		b.WriteString(scalingTable(res, "init", InitLevels, func(l Level) string { return "init " + l.InitWork.String() }))
		b.WriteString("\nMedian time to ready in ms, and its ratio to (1) at the same level. A re-executing library runs every package's `init()` once per image: twice for go-daemon and gowrap's paths, three times for godaemon.\n")
		b.WriteString("\n![time to ready against init() work](scaling-init.svg)\n")
	}
	if res.Ran["fds"] {
		fmt.Fprintf(&b, "\n## Scaling with inherited open fds (RLIMIT_NOFILE %d)\n\n", res.NoFile["fds"])
		b.WriteString(scalingTable(res, "fds", FDLevels, func(l Level) string { return fmt.Sprintf("%d fds", l.FDs) }))
		b.WriteString("\nMedian time to ready in ms, its ratio to (1) at the same level, and how many of the inherited fds the daemon still holds at the highest level (daemon(7): close them all).\n")
		b.WriteString("\n![time to ready against inherited fds](scaling-fds.svg)\n")
	}
	if res.Ran["prefork"] {
		b.WriteString("\n## Prefork: replacing a worker killed with SIGKILL\n\n")
		b.WriteString(PreforkTable(res))
		b.WriteString("\n" + preforkLegend + "\n")
		b.WriteString("\n![respawn latency](respawn.svg)\n")
	}
	if res.Ran["upgrade"] {
		b.WriteString("\n## Upgrade in place under load\n\n")
		b.WriteString(UpgradeTable(res))
		b.WriteString("\n" + upgradeLegend + "\n")
	}
	if f := failures(res); f != "" {
		b.WriteString("\n## Failed starts and failed checks\n\n" + f)
	}
	return b.String()
}

const startLegend = `Times in ms. **ready**: from just before the harness execs the launcher until the daemon's ready line (its own CLOCK_MONOTONIC reading, taken as it writes to the FIFO). **ratio**: median over (1)'s median, with a 95% bootstrap interval. **launcher exit**: until the harness saw the launcher exit (pidfd). **exited before ready**: the FIFO was still empty when the launcher's exit was seen, the ` + "`Type=forking`" + ` race; "?" counts exits whose order could not be decided (both had happened when the harness looked). **CPU**: user+system of every process of the launch (cgroup cpu.stat), until the daemon was checked. **RSS**: the daemon's peak resident set (VmHWM). **execve**: exec calls of the whole launch. **init()**: runs of the Go app's init per start. Floors (7), (7c) and (10) are not daemons: they report ready and keep running. Every Go contender is its own binary, built as its users build it: the peers and (7) pure Go (CGO_ENABLED=0, static), (1), (2) and (7c) with cgo; **the cgo start-up tax** is (7c)'s median minus (7)'s, with a 95% bootstrap interval of the difference, and that difference over (7). Rows (1s)-(5s) run the single cgo binary every Go contender ran before issue 14 (cmd/benchdaemon: all the libraries in one cgo program).`

const recipeLegend = `Times in ms, medians. **cgo tax**: the recipe's cgo floor minus the pure-Go floor (7), with a 95% bootstrap interval of the difference; **tax / (7)**: that difference over (7). **(1) / …**: cdaemon built with the recipe, over (1) with the default build and over the peers (each its own pure-Go binary), with 95% intervals. **launcher exited before ready**: exits seen before the ready line, out of exits seen, and "?" the exits whose order could not be decided.`

const binaryLegend = `Read from each executable (debug/elf, debug/buildinfo): the dynamic loader named in PT_INTERP, the shared libraries in DT_NEEDED, runtime/cgo's functions in the symbol table, and the CGO_ENABLED the toolchain recorded. A pure-Go static binary has none of the first three; TestPeersArePureGo requires it of every peer and of (7), and TestCgoFloorIsCgo requires cgo of every (7c) build.`

const taxLegend = "Each Go floor run to its ready line, then exiting (`BENCH_EXIT=1`). **task-clock**, **page faults**, **context switches**: `perf stat`, medians of %d runs per program, interleaved and rotated; **− (7)**: the difference to the pure-Go floor, with a 95%% bootstrap interval. **system calls** … **threads created**: one `strace -f` run: every call of the start, `mmap`s with `MAP_STACK` (glibc's pthread stacks, each with a guard page, made `PROT_NONE` then opened by `mprotect`) and `clone`/`clone3` with `CLONE_THREAD`. **relocations**, **loader**: `LD_DEBUG=statistics` (symbol relocations, relative ones in brackets, and the loader's start-up time in thousands of cycles). Raw outputs: `tax/`."

const correctnessLegend = `Failures out of checked starts (0 is right). **reparented**: the daemon's parent is the harness (a child subreaper standing in for init), not the launcher or an intermediate. **own session**: not in the terminal's session. **no tty**: no controlling terminal (tty_nr 0). **stdio /dev/null**: fds 0-2 are /dev/null, not the terminal. **left behind**: another process of the launch still alive a second after ready. **session leader** and **kept inherited fd** are properties, not failures: a session leader can acquire a terminal by opening one (why daemon(7) forks twice), and an fd inherited from the launcher (one is passed) is a leak daemon(7) says to close.`

const preforkLegend = `Times in ms. One worker per master, so a kill leaves nobody accepting. **respawn**: from the SIGKILL of the worker until a connection, made right after the kill with blocking system calls, was answered "hello <pid>" by the replacement (it waited in the listen backlog: the killed worker never runs again). **old worker gone**: until its pidfd said it was dead: the kernel tearing down a Go process, which no master controls. **respawn after it was gone**: the rest, the master's part. **replacement ready**: until the replacement's ready line. Each worker lives over a second before it is killed (cdaemon's master treats a younger death as a crash and backs off). Every master runs the same Go worker. With one spare (CDAEMON_SPARES=1) the replacement is a worker already started (runtime and init() done) and waiting in cdaemon.Worker(): the master releases it with one record and forks the next spare behind it once the released one is ready; **a spare's RSS / Pss** is its memory, Pss counting pages shared with the others by halves.`

var upgradeLegend = fmt.Sprintf("Times in ms, medians and p90 (nearest rank) with 95%% bootstrap intervals. Each daemon is started once (`CDAEMON=1`, examples/prefork/testdata/versioned built as v1 and v2) and upgraded again and again, the two kinds interleaved round by round: each round renames the other build over the daemon's path and sends USR2 (a plain signal, as `kill -USR2`; `app upgrade` would add its own start to the time), while %d loopback clients connect in a loop, each answer (\"<version> <pid>\") checked. **new version answering**: until the first answer from the new build. **old generation gone**: until every old process was gone (pidfds): the prefork master's old workers after their QUIT, or the old single process after its drain. **failed**: connections refused, reset, or answered badly during the round (0 is right). **stale answers**: from the old version to connections opened after the old generation was gone (0 is right). **master pid kept**: after the switch the master is alive, still in the pid file, and every answer comes from one of its children. Each round ends %d answers after the old generation was gone. Raw: `upgrades.csv`.", upgradeConns, upgradeAfter)

// StartTable is the start-up experiment's table.
func StartTable(res *Results) string {
	var b strings.Builder
	b.WriteString("| contender | ready median | p90 | ratio to (1) | launcher exit median | p90 | exited before ready | CPU median | ratio | RSS MB | execve | init() | runs |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range res.Summaries("start", StartLevel) {
		if s.Contender.Group == "recipe" {
			continue // RecipeTable
		}
		if s.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %s |||||||||||||\n", s.Contender.Name, s.Skipped)
			continue
		}
		if len(s.readySamples) == 0 {
			fmt.Fprintf(&b, "| %s | every start failed: %s |||||||||||| 0/%d |\n", s.Contender.Name, cell(s.FirstErr), s.Runs)
			continue
		}
		exit, exitP90, before := "–", "–", "–"
		if !s.Contender.Floor {
			exit, exitP90 = s.Exit.String(), s.ExitP90.String()
			before = beforeCell(s)
		}
		cpu, cpuRatio := "–", "–"
		if s.CPUKnown > 0 {
			cpu, cpuRatio = ms(s.CPU), ratioCell(s.CPURatio, math.NaN(), 0)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %d/%d |\n",
			s.Contender.Name, s.Ready, s.ReadyP90, ratioCell(s.ReadyRatio, s.ReadyLo, s.ReadyHi),
			exit, exitP90, before, cpu, cpuRatio, float64(s.RSSKB)/1024,
			minMax(s.ExecMin, s.ExecMax), initCell(s), s.Runs-s.Failed, s.Runs)
		if s.Contender.Key == "cgo-floor" {
			if tx, ok := res.tax("default"); ok {
				fmt.Fprintf(&b, "| **the cgo start-up tax: (7c) − (7)** | %s | | %s of (7) | |||||||||\n",
					tx.diffCell(), tx.fracCell())
			}
		}
	}
	return b.String()
}

// beforeCell is "launcher exits seen before ready / exits seen", with
// the undecidable orders next to it, always: a 0 is only as strong as
// the "?" beside it.
func beforeCell(s Summary) string {
	return fmt.Sprintf("%s (%d ?)", frac(s.Before, s.Exited), s.Unknown)
}

// taxStats is a recipe's cgo start-up tax: its cgo floor's median time
// to ready minus the pure-Go floor's, with 95% bootstrap intervals of the
// difference and of its fraction of the pure floor.
type taxStats struct {
	pure, cgo            Summary
	diff, diffLo, diffHi time.Duration
	frac, fracLo, fracHi float64 // diff / pure floor
}

func (t taxStats) diffCell() string {
	return fmt.Sprintf("%s ms [%s, %s]", ms(t.diff), ms(t.diffLo), ms(t.diffHi))
}

func (t taxStats) fracCell() string {
	return fmt.Sprintf("%.2f [%.2f, %.2f]", t.frac, t.fracLo, t.fracHi)
}

// cdaemonKey and floorKey are the keys of (1) and (7c) built with a
// recipe.
func cdaemonKey(recipe string) string {
	if recipe == "default" {
		return "cdaemon"
	}
	return "cdaemon@" + recipe
}

func floorKey(recipe string) string {
	if recipe == "default" {
		return "cgo-floor"
	}
	return "cgo-floor@" + recipe
}

func (res *Results) tax(recipe string) (taxStats, bool) {
	var t taxStats
	var ok1, ok2 bool
	t.pure, ok1 = res.find("start", "go-floor")
	t.cgo, ok2 = res.find("start", floorKey(recipe))
	if !ok1 || !ok2 || t.pure.Ready.D <= 0 {
		return t, false
	}
	t.diff = t.cgo.Ready.D - t.pure.Ready.D
	t.diffLo, t.diffHi = diffCI(t.cgo.readySamples, t.pure.readySamples)
	t.frac = float64(t.diff) / float64(t.pure.Ready.D)
	lo, hi := ratioCI(t.cgo.readySamples, t.pure.readySamples)
	t.fracLo, t.fracHi = lo-1, hi-1
	return t, true
}

// ratioOf is median(a)/median(b) of two start-up contenders, with its
// 95% interval, as a table cell; "–" when either is missing.
func (res *Results) ratioOf(a, b string) (string, float64, bool) {
	sa, ok1 := res.find("start", a)
	sb, ok2 := res.find("start", b)
	if !ok1 || !ok2 {
		return "–", math.NaN(), false
	}
	r := float64(sa.Ready.D) / float64(sb.Ready.D)
	lo, hi := ratioCI(sa.readySamples, sb.readySamples)
	return ratioCell(r, lo, hi), r, true
}

// RecipeTable is the build recipes' part of the start-up experiment:
// for each recipe, the cgo floor and cdaemon built with it, the cgo tax
// over the pure-Go floor, and cdaemon's ratios to the pure-Go peers.
func RecipeTable(res *Results) string {
	var b strings.Builder
	pure, ok := res.find("start", "go-floor")
	if !ok {
		return ""
	}
	fmt.Fprintf(&b, "The pure-Go floor (7), the same program without cgo: **%s ms** (p90 %s).\n\n", pure.Ready, pure.ReadyP90)
	b.WriteString("| recipe | (7c) cgo floor, median | cgo tax: (7c) − (7) [95%] | tax / (7) [95%] | (1) cdaemon, median | (1) / (1) default | (1) / (4) go-daemon | (1) / (5) godaemon | launcher exited before ready | binary MB |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	size := map[string]int64{}
	for _, bin := range res.Binaries {
		size[bin.Recipe] = bin.Size
	}
	for _, r := range Recipes {
		name := r.Name
		if r.Key == RecommendedRecipe {
			name = "**recommended:** " + name
		}
		if why := res.Skipped[cdaemonKey(r.Key)]; why != "" {
			fmt.Fprintf(&b, "| %s | %s |||||||||\n", name, why)
			continue
		}
		floorCell, taxCell, fracCell := "–", "–", "–"
		if tx, ok := res.tax(r.Key); ok {
			floorCell, taxCell, fracCell = tx.cgo.Ready.String(), tx.diffCell(), tx.fracCell()
		}
		cd, ok := res.find("start", cdaemonKey(r.Key))
		cdCell, before := "–", "–"
		if ok {
			cdCell, before = cd.Ready.String(), beforeCell(cd)
		} else if s := res.summaryOf("start", cdaemonKey(r.Key)); s.Runs > 0 {
			cdCell = "every start failed: " + cell(s.FirstErr)
		}
		vsDefault, _, _ := res.ratioOf(cdaemonKey(r.Key), "cdaemon")
		vs4, _, _ := res.ratioOf(cdaemonKey(r.Key), "go-daemon")
		vs5, _, _ := res.ratioOf(cdaemonKey(r.Key), "godaemon")
		mb := "–"
		if n := size[r.Key]; n > 0 {
			mb = fmt.Sprintf("%.1f", float64(n)/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			name, floorCell, taxCell, fracCell, cdCell, vsDefault, vs4, vs5, before, mb)
	}
	return b.String()
}

// summaryOf is the summary of one contender, whatever its trials were.
func (res *Results) summaryOf(exp, key string) Summary {
	for _, s := range res.Summaries(exp, StartLevel) {
		if s.Contender.Key == key {
			return s
		}
	}
	return Summary{}
}

// BinaryTable says what each contender's executable is made of.
func BinaryTable(res *Results) string {
	var b strings.Builder
	b.WriteString("| program | MB | PT_INTERP (dynamic loader) | DT_NEEDED | cgo symbols | CGO_ENABLED | pure-Go static |\n")
	b.WriteString("|---|--:|---|---|---|:-:|---|\n")
	for _, bin := range res.Binaries {
		interp, needed, syms := "none", "none", "none"
		if bin.Interp != "" {
			interp = "`" + bin.Interp + "`"
		}
		if len(bin.Needed) > 0 {
			needed = "`" + strings.Join(bin.Needed, "`, `") + "`"
		}
		switch {
		case !bin.Symbols:
			syms = "(no symbol table)"
		case len(bin.Cgo) > 0:
			syms = "`" + strings.Join(bin.Cgo[:min(3, len(bin.Cgo))], "`, `") + "`, …"
		}
		pure := "yes"
		if ok, why := bin.PureGo(); !ok {
			pure = "no: " + why
			if len(pure) > 40 {
				pure = pure[:strings.LastIndex(pure[:40], " ")] + " …"
			}
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s | %s | %s | %s |\n", bin.Name, float64(bin.Size)/(1<<20),
			interp, needed, syms, bin.CgoEnabled, pure)
	}
	return b.String()
}

func initCell(s Summary) string {
	if !s.Contender.Go {
		return "–"
	}
	return minMax(s.InitMin, s.InitMax)
}

func minMax(lo, hi int) string {
	switch {
	case lo < 0:
		return "–"
	case lo == hi:
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

// CorrectnessTable is the start-up experiment's checks, per contender.
func CorrectnessTable(res *Results) string {
	var b strings.Builder
	b.WriteString("| contender | checked | reparented | own session | no tty | stdio /dev/null | left behind | any failure | session leader | kept inherited fd |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range res.Summaries("start", StartLevel) {
		if s.Skipped != "" {
			continue
		}
		if s.Contender.Floor {
			fmt.Fprintf(&b, "| %s | not a daemon: not checked |||||||||\n", s.Contender.Name)
			continue
		}
		n := s.Checked
		fmt.Fprintf(&b, "| %s | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Contender.Name, n, s.Runs,
			frac(s.NotReparented, n), frac(s.SameSession, n), frac(s.HasTTY, n), frac(s.StdioNotNull, n),
			frac(s.LeftBehind, n), frac(s.AnyFailure, n), frac(s.SessionLeader, n), frac(s.KeptFDs, n))
	}
	return b.String()
}

func scalingTable(res *Results, exp string, levels []Level, name func(Level) string) string {
	var b strings.Builder
	b.WriteString("| contender |")
	align := "|---|"
	for _, l := range levels {
		fmt.Fprintf(&b, " %s |", name(l))
		align += "--:|"
	}
	if exp == "fds" {
		fmt.Fprintf(&b, " fds kept at %d |", levels[len(levels)-1].FDs)
		align += "--:|"
	}
	b.WriteString(" runs |\n" + align + "--:|\n")
	var rows []string
	var keys []string
	cells := map[string][]string{}
	runs := map[string][2]int{}
	kept := map[string]int{}
	for i, l := range levels {
		for _, s := range res.Summaries(exp, l) {
			k := s.Contender.Name
			if _, ok := cells[k]; !ok {
				keys = append(keys, k)
				cells[k] = make([]string, len(levels))
			}
			c := "–"
			if len(s.readySamples) > 0 {
				c = fmt.Sprintf("%s (%s)", s.Ready, ratioCell(s.ReadyRatio, math.NaN(), 0))
			}
			cells[k][i] = c
			rn := runs[k]
			runs[k] = [2]int{rn[0] + s.Runs - s.Failed, rn[1] + s.Runs}
			if i == len(levels)-1 {
				kept[k] = s.KeptMax
				if s.Contender.Floor {
					kept[k] = -1
				}
			}
		}
	}
	for _, k := range keys {
		row := "| " + k + " | " + strings.Join(cells[k], " | ") + " |"
		if exp == "fds" {
			if kept[k] < 0 {
				row += " – |"
			} else {
				row += fmt.Sprintf(" %d |", kept[k])
			}
		}
		row += fmt.Sprintf(" %d/%d |", runs[k][0], runs[k][1])
		rows = append(rows, row)
	}
	b.WriteString(strings.Join(rows, "\n") + "\n")
	return b.String()
}

// PreforkTable is the respawn experiment's table.
func PreforkTable(res *Results) string {
	var b strings.Builder
	b.WriteString("| master | respawn median ms | p90 | ratio to cdaemon | old worker gone | respawn after it was gone | ratio | replacement ready | master RSS MB | master threads | a spare's RSS / Pss MB | respawns |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	ref := res.respawnSummary("cdaemon")
	for _, m := range res.Masters {
		s := res.respawnSummary(m.Key)
		if m.Err != "" && s.n == 0 {
			fmt.Fprintf(&b, "| %s | failed: %s ||||||||\n", m.Name, cell(m.Err))
			continue
		}
		ratio, ratioAfter := "–", "–"
		if ref.n > 0 && s.n > 0 {
			lo, hi := ratioCI(s.samples, ref.samples)
			ratio = ratioCell(float64(s.latency.D)/float64(ref.latency.D), lo, hi)
			lo, hi = ratioCI(s.afters, ref.afters)
			ratioAfter = ratioCell(float64(s.after.D)/float64(ref.after.D), lo, hi)
		}
		spare := "–"
		if m.SpareRSSKB > 0 {
			spare = fmt.Sprintf("%.1f / %.1f", float64(m.SpareRSSKB)/1024, float64(m.SparePSSKB)/1024)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %d | %s | %d/%d |\n", m.Name, s.latency, s.p90, ratio,
			s.dead, s.after, ratioAfter, s.ready, float64(m.RSSKB)/1024, m.Threads, spare, s.n, s.n+s.failed)
	}
	return b.String()
}

// failures lists, per contender, the first failed start and the first
// failed check of each experiment: every one is counted in the tables.
func failures(res *Results) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, t := range res.Trials {
		key := t.Experiment + "/" + t.Contender
		if t.Failed() && !seen[key+"err"] {
			seen[key+"err"] = true
			fmt.Fprintf(&b, "- %s, %s (%v): failed start: %s\n", t.Experiment, t.Contender, t.Level, cell(t.Err))
		}
		if t.Checks.Failed() && !seen[key+"check"] {
			seen[key+"check"] = true
			fmt.Fprintf(&b, "- %s, %s (%v): failed check: %s\n", t.Experiment, t.Contender, t.Level, cell(t.Checks.Problem))
		}
	}
	for _, m := range []string{"cdaemon", "exec"} {
		if s := res.respawnSummary(m); s.failed > 0 {
			fmt.Fprintf(&b, "- prefork, %s: %d failed respawn(s), first: %s\n", m, s.failed, cell(s.firstErr))
		}
	}
	for _, k := range UpgradeKinds {
		s := res.upgradeSummary(k.Key)
		if why := res.UpgradeStart[k.Key]; why != "" {
			fmt.Fprintf(&b, "- upgrade, %s: %s\n", k.Key, cell(why))
		}
		if s.errs > 0 {
			fmt.Fprintf(&b, "- upgrade, %s: %d failed upgrade(s), first: %s\n", k.Key, s.errs, cell(s.firstErr))
		}
		if s.failed > 0 {
			fmt.Fprintf(&b, "- upgrade, %s: %d failed connection(s) of %d, first: %s\n", k.Key, s.failed, s.conns, cell(s.firstFail))
		}
	}
	return b.String()
}

// breakdownSection says where (1)'s time to ready goes, from the stage
// timestamps the daemon reports (cdaemon.Stages), beside the Go floor.
func breakdownSection(res *Results) string {
	var ts []Trial
	for _, t := range res.Trials {
		if t.Experiment == "start" && t.Contender == "cdaemon" {
			ts = append(ts, t)
		}
	}
	med, n := Breakdown(ts)
	if n == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n### Where (1)'s time goes\n\n")
	fmt.Fprintf(&b, "Medians of each interval over %d starts, from the stage timestamps the daemon reports (`cdaemon.Stages`); they need not add up to the median total.\n\n", n)
	b.WriteString("| interval | median ms |\n|---|--:|\n")
	for i, d := range med {
		fmt.Fprintf(&b, "| %s | %s |\n", StageNames[i], ms(d))
	}
	if gf, ok := res.find("start", "go-floor"); ok {
		fmt.Fprintf(&b, "| (7) the Go floor, exec to ready, for comparison | %s |\n", gf.Ready)
	}
	return b.String()
}

// Headline is results/headline.md: the short table the READMEs quote
// (the main contenders, the cgo tax, (1) with the recommended build) and
// the targets, from the same run as latest.md.
func Headline(res *Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- generated by bench/cmd/benchrun from the run of %s; the READMEs quote it -->\n\n",
		res.Began.UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString("| contender | time to ready, median | ratio to (1) [95%] | launcher exited before ready (? undecidable) |\n")
	b.WriteString("| --- | --: | --: | --: |\n")
	rec, _ := recipe(RecommendedRecipe)
	for _, s := range res.Summaries("start", StartLevel) {
		c := s.Contender
		if c.Group != "" && c.Key != cdaemonKey(rec.Key) {
			continue
		}
		if s.Skipped != "" || len(s.readySamples) == 0 {
			continue
		}
		name := c.Name
		if c.Key == cdaemonKey(rec.Key) && rec.Key != "default" {
			name = "(1) cdaemon, recommended build: " + rec.Name
		}
		before := "–"
		if !c.Floor {
			before = beforeCell(s)
		}
		fmt.Fprintf(&b, "| %s | %s ms | %s | %s |\n", name, s.Ready, ratioCell(s.ReadyRatio, s.ReadyLo, s.ReadyHi), before)
		if c.Key == "cgo-floor" {
			if tx, ok := res.tax("default"); ok {
				fmt.Fprintf(&b, "| **cgo start-up tax, (7c) − (7)**, default build | %s | %s of (7) | – |\n", tx.diffCell(), tx.fracCell())
			}
			if tx, ok := res.tax(rec.Key); ok && rec.Key != "default" {
				fmt.Fprintf(&b, "| **cgo start-up tax, recommended build** (%s) | %s | %s of (7) | – |\n", rec.Key, tx.diffCell(), tx.fracCell())
			}
		}
	}
	b.WriteString("\n| target | measured (medians) | |\n|---|---|---|\n")
	for _, t := range res.Targets() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.What, cell(t.Measured), t.verdict())
	}
	return b.String()
}
