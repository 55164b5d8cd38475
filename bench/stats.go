package bench

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Value is a time, or a lower bound of it when the start reached the
// timeout first (a censored sample).
type Value struct {
	D        time.Duration
	Censored bool
}

// Ms is the value in milliseconds.
func (v Value) Ms() float64 { return float64(v.D) / float64(time.Millisecond) }

// percentile is the nearest-rank percentile: the smallest sample with at
// least a fraction p of the samples at or below it. Nearest rank rather
// than interpolation, so that a censored sample (sorted above every
// measured one) is never averaged with a measured one.
func percentile(v []Value, p float64) Value {
	if len(v) == 0 {
		return Value{}
	}
	s := slices.Clone(v)
	slices.SortFunc(s, compareValues)
	k := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(k, 0)]
}

func compareValues(a, b Value) int {
	if a.Censored != b.Censored {
		if a.Censored {
			return 1
		}
		return -1
	}
	return cmp.Compare(a.D, b.D)
}

// ratioCI is a 95% bootstrap interval of median(a)/median(b): both
// samples resampled with replacement, independently, 2000 times, with a
// fixed seed so that the same data always gives the same interval.
func ratioCI(a, b []Value) (lo, hi float64) {
	return bootstrapCI(a, b, func(ma, mb time.Duration) float64 { return float64(ma) / float64(mb) })
}

// diffCI is the same interval for median(a) − median(b), in nanoseconds.
func diffCI(a, b []Value) (lo, hi time.Duration) {
	l, h := bootstrapCI(a, b, func(ma, mb time.Duration) float64 { return float64(ma - mb) })
	return time.Duration(l), time.Duration(h)
}

func bootstrapCI(a, b []Value, f func(ma, mb time.Duration) float64) (lo, hi float64) {
	if len(a) == 0 || len(b) == 0 {
		return math.NaN(), math.NaN()
	}
	const n = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	stats := make([]float64, n)
	ra, rb := make([]Value, len(a)), make([]Value, len(b))
	for i := range stats {
		for j := range ra {
			ra[j] = a[rng.IntN(len(a))]
		}
		for j := range rb {
			rb[j] = b[rng.IntN(len(b))]
		}
		stats[i] = f(percentile(ra, 0.5).D, percentile(rb, 0.5).D)
	}
	slices.Sort(stats)
	return stats[int(0.025*n)], stats[int(0.975*n)-1]
}

// Summary is one contender at one level of one experiment.
type Summary struct {
	Experiment string
	Level      Level
	Contender  Contender
	Skipped    string

	Runs, Failed int
	FirstErr     string

	Ready, ReadyP90  Value
	ReadyRatio       float64 // median over the reference contender's median
	ReadyLo, ReadyHi float64 // 95% bootstrap interval of that ratio
	Exit, ExitP90    Value
	Exited           int
	Before, Unknown  int // launcher exits seen before ready; order not decidable
	CPU, CPUP90      time.Duration
	CPURatio         float64
	CPUKnown         int
	RSSKB            int // median of the daemon's peak RSS
	ExecMin, ExecMax int // -1 when unknown
	InitMin, InitMax int
	Timeouts         int
	Checked          int // starts whose daemon was checked
	NotReparented    int
	SameSession      int
	HasTTY           int
	StdioNotNull     int
	LeftBehind       int
	AnyFailure       int // starts that failed at least one check
	SessionLeader    int
	KeptFDs          int // starts whose daemon kept inherited fds
	KeptMax          int
	FirstProblem     string
	readySamples     []Value
	cpuSamples       []Value
}

// Summarise summarises the trials of one contender at one level. Failed
// starts are left out of the timings and counted; starts that reached
// the timeout stay in as censored samples, so a start that hangs raises
// the percentiles instead of vanishing from them.
func Summarise(c Contender, trials []Trial) Summary {
	s := Summary{Contender: c, ExecMin: -1, ExecMax: -1}
	var exits []Value
	rss := []Value{}
	for _, t := range trials {
		s.Runs++
		if t.Failed() {
			s.Failed++
			if s.FirstErr == "" {
				s.FirstErr = t.Err
			}
			continue
		}
		s.readySamples = append(s.readySamples, Value{t.Ready, t.ReadyTimeout})
		if t.ReadyTimeout {
			s.Timeouts++
		}
		if !c.Floor {
			exits = append(exits, Value{t.Exit, !t.Exited})
		}
		if t.Exited {
			s.Exited++
		}
		switch t.Order {
		case ExitBefore:
			s.Before++
		case OrderUnknown:
			s.Unknown++
		}
		if t.CPUKnown {
			s.CPUKnown++
			s.cpuSamples = append(s.cpuSamples, Value{D: t.CPU})
		}
		if t.RSSKB > 0 {
			rss = append(rss, Value{D: time.Duration(t.RSSKB)})
		}
		if !t.ReadyTimeout {
			if t.Execs >= 0 {
				if s.ExecMin < 0 || t.Execs < s.ExecMin {
					s.ExecMin = t.Execs
				}
				s.ExecMax = max(s.ExecMax, t.Execs)
			}
			if s.InitMax == 0 || t.Inits < s.InitMin {
				s.InitMin = t.Inits
			}
			s.InitMax = max(s.InitMax, t.Inits)
		}
		if ch := t.Checks; ch.Done {
			s.Checked++
			count := func(bad bool, n *int) {
				if bad {
					*n++
				}
			}
			count(!ch.Reparented, &s.NotReparented)
			count(!ch.OwnSession, &s.SameSession)
			count(!ch.NoTTY, &s.HasTTY)
			count(!ch.StdioNull, &s.StdioNotNull)
			count(!ch.NothingLeft, &s.LeftBehind)
			count(ch.Failed(), &s.AnyFailure)
			count(ch.SessionLeader, &s.SessionLeader)
			count(ch.KeptFDs > 0, &s.KeptFDs)
			s.KeptMax = max(s.KeptMax, ch.KeptFDs)
			if ch.Failed() && s.FirstProblem == "" {
				s.FirstProblem = ch.Problem
			}
		}
	}
	s.Ready, s.ReadyP90 = percentile(s.readySamples, 0.5), percentile(s.readySamples, 0.9)
	s.Exit, s.ExitP90 = percentile(exits, 0.5), percentile(exits, 0.9)
	s.CPU, s.CPUP90 = percentile(s.cpuSamples, 0.5).D, percentile(s.cpuSamples, 0.9).D
	s.RSSKB = int(percentile(rss, 0.5).D)
	return s
}

// withRatios fills the ratios of s to the reference summary ref.
func (s *Summary) withRatios(ref Summary) {
	s.ReadyRatio, s.ReadyLo, s.ReadyHi = math.NaN(), math.NaN(), math.NaN()
	s.CPURatio = math.NaN()
	if len(s.readySamples) > 0 && len(ref.readySamples) > 0 && ref.Ready.D > 0 {
		s.ReadyRatio = float64(s.Ready.D) / float64(ref.Ready.D)
		s.ReadyLo, s.ReadyHi = ratioCI(s.readySamples, ref.readySamples)
	}
	if len(s.cpuSamples) > 0 && ref.CPU > 0 {
		s.CPURatio = float64(s.CPU) / float64(ref.CPU)
	}
}

// Summaries summarises every contender of an experiment at a level, with
// ratios to the first contender that ran.
// They are computed once per experiment and level (each ratio's interval
// costs 2000 resamples, and the report asks for them many times).
func (res *Results) Summaries(exp string, lv Level) []Summary {
	key := fmt.Sprint(exp, lv, len(res.Trials), len(res.Contenders))
	if out, ok := res.summaries[key]; ok {
		return out
	}
	out := res.summarise(exp, lv)
	if res.summaries == nil {
		res.summaries = map[string][]Summary{}
	}
	res.summaries[key] = out
	return out
}

func (res *Results) summarise(exp string, lv Level) []Summary {
	var out []Summary
	for _, c := range res.Contenders {
		var ts []Trial
		for _, t := range res.Trials {
			if t.Experiment == exp && t.Level == lv && t.Contender == c.Key {
				ts = append(ts, t)
			}
		}
		s := Summarise(c, ts)
		s.Experiment, s.Level, s.Skipped = exp, lv, res.Skipped[c.Key]
		if len(ts) == 0 && (s.Skipped == "" || exp != "start") {
			continue // not part of this experiment
		}
		out = append(out, s)
	}
	for i := range out {
		out[i].withRatios(out[0])
	}
	return out
}

// StageNames name the intervals of Breakdown.
var StageNames = []string{
	"exec of the launcher → constructor begins (exec, dynamic loading, C init)",
	"→ first child runs (validation, fds, signals, channels, vfork)",
	"→ first child after setsid (TIOCNOTTY, setsid)",
	"→ the daemon returns from the constructor (fork, umask, chdir, stdio, signals)",
	"→ ready line (Go runtime start, package init, main)",
}

// Breakdown is the median of each interval between cdaemon's stages in
// the trials given, and how many trials had them.
func Breakdown(trials []Trial) ([]time.Duration, int) {
	var iv [][]Value
	n := 0
	for _, t := range trials {
		if t.Failed() || t.ReadyTimeout || len(t.Stages) != 4 || t.Stages[1] == 0 {
			continue
		}
		n++
		points := append([]time.Duration{0}, t.Stages...)
		points = append(points, t.Ready)
		if iv == nil {
			iv = make([][]Value, len(points)-1)
		}
		for i := range iv {
			iv[i] = append(iv[i], Value{D: points[i+1] - points[i]})
		}
	}
	out := make([]time.Duration, len(iv))
	for i := range iv {
		out[i] = percentile(iv[i], 0.5).D
	}
	return out, n
}

// percentileCI is a 95% bootstrap interval of the p-th percentile of v
// (2000 resamples, fixed seed, as ratioCI).
func percentileCI(v []Value, p float64) (lo, hi time.Duration) {
	if len(v) == 0 {
		return 0, 0
	}
	const n = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	stats := make([]time.Duration, n)
	r := make([]Value, len(v))
	for i := range stats {
		for j := range r {
			r[j] = v[rng.IntN(len(v))]
		}
		stats[i] = percentile(r, p).D
	}
	slices.Sort(stats)
	return stats[int(0.025*n)], stats[int(0.975*n)-1]
}
