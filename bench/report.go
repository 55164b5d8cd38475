package bench

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Value is a time, or a lower bound of it when the run reached the
// timeout first (a censored sample).
type Value struct {
	D        time.Duration
	Censored bool
}

func (v Value) String() string {
	s := fmt.Sprintf("%.2f", float64(v.D)/float64(time.Millisecond))
	if v.Censored {
		return "≥ " + s
	}
	return s
}

// Stats summarises one approach. Failed runs (an error from the launcher
// or the daemon) are left out; runs that reached the timeout are kept as
// censored samples, so a start that hangs raises the percentiles instead
// of vanishing from them.
type Stats struct {
	Measured, Failed      int
	ReadyMedian, ReadyP90 Value
	ExitMedian, ExitP90   Value
	Exited                int // runs whose launcher exited before the timeout
	NotReadyAtExit        int // of those, runs whose daemon did not answer at that moment
	MinStarts, MaxStarts  int
	FirstErr              error
}

// Summarise computes the medians and 90th percentiles of r.
func Summarise(r Result) Stats {
	var st Stats
	var ready, exit []Value
	for _, s := range r.Samples {
		if s.Err != nil {
			st.Failed++
			if st.FirstErr == nil {
				st.FirstErr = s.Err
			}
			continue
		}
		st.Measured++
		ready = append(ready, Value{s.Ready, s.ReadyTimeout})
		exit = append(exit, Value{s.Exit, s.ExitTimeout})
		if !s.ExitTimeout {
			st.Exited++
			if !s.ReadyAtExit {
				st.NotReadyAtExit++
			}
		}
		// A run cut short by the timeout may not have started every image.
		if !s.ReadyTimeout {
			if st.MaxStarts == 0 || s.Starts < st.MinStarts {
				st.MinStarts = s.Starts
			}
			st.MaxStarts = max(st.MaxStarts, s.Starts)
		}
	}
	st.ReadyMedian, st.ReadyP90 = percentile(ready, 0.5), percentile(ready, 0.9)
	st.ExitMedian, st.ExitP90 = percentile(exit, 0.5), percentile(exit, 0.9)
	return st
}

// percentile is the nearest-rank percentile: the smallest sample with at
// least a fraction p of the samples at or below it. Nearest rank rather
// than interpolation, so that a censored sample is never averaged with a
// measured one.
func percentile(v []Value, p float64) Value {
	if len(v) == 0 {
		return Value{}
	}
	s := slices.Clone(v)
	slices.SortFunc(s, func(a, b Value) int {
		if a.Censored != b.Censored {
			if a.Censored {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.D, b.D)
	})
	k := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(k, 0)]
}

func ratio(v, ref Value) string {
	if ref.D == 0 || ref.Censored {
		return "–"
	}
	r := fmt.Sprintf("×%.2f", float64(v.D)/float64(ref.D))
	if v.Censored {
		return "≥ " + r
	}
	return r
}

// Table renders results as Markdown; ratios are of medians, to the first
// approach's.
func Table(results []Result) string {
	var b strings.Builder
	refKey := ""
	if len(results) > 0 {
		refKey = results[0].Approach.Key
	}
	fmt.Fprintf(&b, "| approach | start→ready median ms | p90 ms | ratio to %[1]s | launcher exit median ms | p90 ms | ratio to %[1]s | not ready at launcher exit | program starts (execve) per daemon | runs measured |\n", refKey)
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	var ref Stats
	for i, r := range results {
		st := Summarise(r)
		if i == 0 {
			ref = st
		}
		if r.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | | | | | | | | 0 |\n", r.Approach.Name, r.Skipped)
			continue
		}
		if st.Measured == 0 {
			fmt.Fprintf(&b, "| %s | every run failed: %s | | | | | | | | 0/%d |\n",
				r.Approach.Name, cell(st.FirstErr), len(r.Samples))
			continue
		}
		starts := fmt.Sprint(st.MinStarts)
		if st.MaxStarts == 0 {
			starts = "–"
		} else if st.MaxStarts != st.MinStarts {
			starts = fmt.Sprintf("%d–%d", st.MinStarts, st.MaxStarts)
		}
		notReady := "–"
		if st.Exited > 0 {
			notReady = fmt.Sprintf("%d/%d (%.0f%%)", st.NotReadyAtExit, st.Exited,
				100*float64(st.NotReadyAtExit)/float64(st.Exited))
		}
		fmt.Fprintf(&b, "| %s | %v | %v | %s | %v | %v | %s | %s | %s | %d/%d |\n",
			r.Approach.Name,
			st.ReadyMedian, st.ReadyP90, ratio(st.ReadyMedian, ref.ReadyMedian),
			st.ExitMedian, st.ExitP90, ratio(st.ExitMedian, ref.ExitMedian),
			notReady, starts, st.Measured, len(r.Samples))
	}
	return b.String()
}

// Notes lists, per approach, the failed runs and the runs that reached the
// timeout.
func Notes(results []Result) string {
	var b strings.Builder
	for _, r := range results {
		st := Summarise(r)
		if st.Failed > 0 {
			fmt.Fprintf(&b, "- %s: %d failed run(s), first: %s\n", r.Approach.Name, st.Failed, cell(st.FirstErr))
		}
		hung := 0
		for _, s := range r.Samples {
			if s.Err == nil && s.ReadyTimeout {
				hung++
			}
		}
		if hung > 0 {
			fmt.Fprintf(&b, "- %s: %d run(s) had no \"hello\" within the timeout (kept as censored samples)\n", r.Approach.Name, hung)
		}
	}
	return b.String()
}

func cell(err error) string {
	s := strings.ReplaceAll(fmt.Sprint(err), "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// Machine describes where the numbers come from: CPUs usable, CPU model,
// kernel and Go version.
func Machine() string {
	var u unix.Utsname
	kernel := "unknown"
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	return fmt.Sprintf("nproc %d (%s), kernel %s, %s %s/%s",
		runtime.NumCPU(), cpuModel(), kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "cpu unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "cpu unknown"
}
