package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config says what to run.
type Config struct {
	Rounds      int           // the start-up experiment: measured rounds, each runs every contender once
	ScaleRounds int           // each scaling experiment: measured rounds of every (level, contender)
	Respawns    int           // the prefork experiment: worker kills per master
	Upgrades    int           // the upgrade experiment: upgrades of each daemon
	TaxRounds   int           // the tax experiment: perf stat runs of each program
	Warmup      int           // rounds run first and discarded (page cache, first exec)
	Timeout     time.Duration // bound of one start; a start still not ready then counts as at least this long
	Settle      time.Duration // how long an intermediate process may take to exit after ready (default 1s)
	Only        []string      // contender keys to run; nil for all
	Experiments []string      // of "start", "init", "fds", "prefork", "upgrade", "tax"; nil for all
	Work        string        // scratch directory
	Progress    io.Writer     // progress lines; nil for none
	Stop        <-chan struct{}

	contenders []Contender // instead of Contenders (the harness's own tests)
	noCgroup   bool        // use the fallback tree even where cgroups work
}

// Experiments, in the order they run.
var Experiments = []string{"start", "init", "fds", "prefork", "upgrade", "tax"}

// Levels of the scaling experiments: the work done in the Go app's init()
// (a re-exec runs it once per image), and the fds the launcher inherits
// (under a high RLIMIT_NOFILE: a library that closes fds up to the limit
// pays for the limit, not for the fds).
var (
	InitLevels = []Level{{InitWork: 0}, {InitWork: 10 * time.Millisecond}, {InitWork: 50 * time.Millisecond}}
	FDLevels   = []Level{{FDs: 0}, {FDs: 100}, {FDs: 10000}}
	StartLevel = Level{FDs: 1}
)

// Results is everything a run measured, with what it ran on.
type Results struct {
	Began      time.Time
	Took       time.Duration
	Machine    Machine
	Config     Config
	Contenders []Contender       // in table order
	Skipped    map[string]string // contender key: why it did not run
	Trials     []Trial           // every measured start (warm-up rounds are not kept)
	Respawns   []Respawn         // the prefork experiment
	Masters    []Master          // the prefork masters as measured
	Upgrades   []Upgrade         // the upgrade experiment
	// UpgradeStart: an upgrade experiment's daemon that did not start, or
	// was lost: why.
	UpgradeStart map[string]string
	Tree         string            // how a launch's processes were held (cgroup v2, or not)
	TreeNote     string            // why not a cgroup
	ExecNote     string            // why execve calls were not counted, if they were not
	NoFile       map[string]uint64 // RLIMIT_NOFILE soft limit per experiment
	Ran          map[string]bool   // experiments run
	Binaries     []Binary          // what each contender's executable is made of
	Tax          *Tax              // the tax experiment's measurements
	Stopped      bool              // the run was interrupted; the results are partial

	summaries map[string][]Summary // Summaries, computed once
}

// Run runs the experiments of cfg with the programs p, on the terminal
// term (OpenTerminal). The calling process becomes a child subreaper, so
// that daemons are reparented to it (standing in for init) and reaped;
// Run leaves no process behind, and returns the results so far when
// cfg.Stop is closed.
func Run(p *Programs, term *Terminal, cfg Config) (*Results, error) {
	if cfg.Settle == 0 {
		cfg.Settle = time.Second
	}
	if len(cfg.Experiments) == 0 {
		cfg.Experiments = Experiments
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("bench: prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	res := &Results{Began: time.Now(), Machine: ReadMachine(), Config: cfg,
		Skipped: map[string]string{}, NoFile: map[string]uint64{}, Ran: map[string]bool{}}
	var err error
	if res.Binaries, err = p.Binaries(); err != nil {
		return nil, err
	}
	all := Contenders
	if cfg.contenders != nil {
		all = cfg.contenders
	}
	for _, c := range all {
		if cfg.Only != nil && !slices.Contains(cfg.Only, c.Key) {
			continue
		}
		res.Contenders = append(res.Contenders, c)
		if why := p.Missing[c.Needs]; c.Needs != "" && why != "" {
			res.Skipped[c.Key] = why
		}
	}
	r := &runner{progs: p, term: term, timeout: cfg.Timeout, settle: cfg.Settle, work: cfg.Work,
		marker: filepath.Join(cfg.Work, "inherited-fd"), noCgroup: cfg.noCgroup}
	if err := os.WriteFile(r.marker, nil, 0o644); err != nil {
		return nil, err
	}
	probe, note := newTree("probe", cfg.noCgroup)
	res.Tree, res.TreeNote = probe.kind(), note
	probe.close()
	if r.execs, err = newExecCounter(); err != nil {
		res.ExecNote = err.Error()
		r.execs = nil
	} else {
		defer r.execs.close()
	}
	if r.execs == nil {
		r.execs = &execCounter{fd: -1}
		r.execNote = res.ExecNote
	}

	defer func() { res.Took = time.Since(res.Began) }()
	for _, exp := range cfg.Experiments {
		var err error
		switch exp {
		case "start":
			err = r.experiment(res, exp, res.runnable(func(Contender) bool { return true }), []Level{StartLevel}, cfg.Rounds)
		case "init":
			err = r.experiment(res, exp, res.runnable(func(c Contender) bool { return c.Go && c.Group == "" }), InitLevels, cfg.ScaleRounds)
		case "fds":
			restore, e := raiseNoFile(res, exp)
			if e != nil {
				return res, e
			}
			err = r.experiment(res, exp, res.runnable(func(c Contender) bool { return (c.Go || c.Key == "daemon3") && c.Group == "" }), FDLevels, cfg.ScaleRounds)
			restore()
		case "prefork":
			err = r.prefork(res)
		case "upgrade":
			err = r.upgrade(res)
		case "tax":
			err = r.tax(res, cfg.TaxRounds)
		default:
			return res, fmt.Errorf("bench: no experiment %q (have %v)", exp, Experiments)
		}
		res.Ran[exp] = true
		if err == errStopped {
			res.Stopped = true
			return res, nil
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// stopped reports whether Stop was closed.
func (cfg Config) stopped() bool {
	select {
	case <-cfg.Stop:
		return true
	default:
		return false
	}
}

func (res *Results) runnable(keep func(Contender) bool) []Contender {
	var out []Contender
	for _, c := range res.Contenders {
		if res.Skipped[c.Key] == "" && keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// experiment runs every (level, contender) pair once per round, in an
// order rotated by one each round, so that a busy phase of a shared
// machine hits every pair alike rather than the one that happened to run
// then.
func (r *runner) experiment(res *Results, name string, cs []Contender, levels []Level, rounds int) error {
	if len(cs) == 0 || rounds <= 0 {
		return nil
	}
	r.probeLimit = true
	defer func() { res.NoFile[name] = r.seenLimit }()
	type pair struct {
		c  Contender
		lv Level
	}
	var pairs []pair
	for _, lv := range levels {
		for _, c := range cs {
			pairs = append(pairs, pair{c, lv})
		}
	}
	warmup := res.Config.Warmup
	began := time.Now()
	for round := -warmup; round < rounds; round++ {
		for k := range pairs {
			if res.Config.stopped() {
				return errStopped
			}
			pr := pairs[(k+round+warmup)%len(pairs)]
			t, err := r.trial(pr.c, pr.lv)
			if err != nil {
				return err
			}
			if round >= 0 {
				t.Experiment, t.Round = name, round
				res.Trials = append(res.Trials, t)
			}
		}
		if w := res.Config.Progress; w != nil {
			switch {
			case round < 0:
				fmt.Fprintf(w, "bench: %s: warm-up round %d/%d\n", name, round+warmup+1, warmup)
			case (round+1)%10 == 0 || round+1 == rounds:
				fmt.Fprintf(w, "bench: %s: round %d/%d (%d starts, %v)\n", name, round+1, rounds,
					(round+1)*len(pairs), time.Since(began).Round(time.Second))
			}
		}
	}
	return nil
}

// raiseNoFile raises RLIMIT_NOFILE as far as the kernel lets root
// (fs.nr_open), for the fds experiment; syscall.Setrlimit, unlike a raw
// setrlimit, also makes it the limit the launchers inherit.
func raiseNoFile(res *Results, exp string) (restore func(), err error) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return nil, err
	}
	want := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		fmt.Sscan(string(b), &want)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err != nil {
		// Not root: as high as the hard limit goes.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: old.Max, Max: old.Max}); err != nil {
			return nil, fmt.Errorf("bench: setrlimit(RLIMIT_NOFILE): %w", err)
		}
	}
	return func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }, nil
}

// launcherNoFile reads the soft RLIMIT_NOFILE a started process got: not
// the harness's own, which the Go runtime raises to the hard limit at
// start and lowers again for the programs it starts.
func launcherNoFile(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			var soft uint64
			fmt.Sscan(rest, &soft)
			return soft
		}
	}
	return 0
}
