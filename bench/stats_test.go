package bench

import (
	"math"
	"testing"
	"time"
)

func ms_(n ...float64) []Value {
	out := make([]Value, len(n))
	for i, v := range n {
		out[i] = Value{D: time.Duration(v * float64(time.Millisecond))}
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	v := ms_(5, 1, 4, 2, 3)
	if got := percentile(v, 0.5); got.D != 3*time.Millisecond {
		t.Errorf("median %v, want 3ms", got.D)
	}
	if got := percentile(v, 0.9); got.D != 5*time.Millisecond {
		t.Errorf("p90 %v, want 5ms", got.D)
	}
	// A censored sample sorts above every measured one, even a larger one.
	v = append(ms_(1, 2, 30), Value{D: 10 * time.Millisecond, Censored: true})
	if got := percentile(v, 1); !got.Censored {
		t.Errorf("max %+v, want the censored sample", got)
	}
	if got := percentile(v, 0.5); got.D != 2*time.Millisecond || got.Censored {
		t.Errorf("median %+v, want 2ms measured", got)
	}
	if got := percentile(nil, 0.5); got.D != 0 {
		t.Errorf("empty: %+v", got)
	}
}

func TestRatioCI(t *testing.T) {
	a, b := ms_(10, 11, 9, 10, 12, 10, 9, 11), ms_(20, 22, 19, 21, 20, 20, 23, 18)
	lo, hi := ratioCI(a, b)
	r := float64(percentile(a, 0.5).D) / float64(percentile(b, 0.5).D)
	if !(lo <= r && r <= hi) || lo <= 0 || hi >= 1 {
		t.Errorf("interval [%v, %v] around %v", lo, hi, r)
	}
	// Fixed seed: the same data, the same interval.
	if lo2, hi2 := ratioCI(a, b); lo2 != lo || hi2 != hi {
		t.Errorf("not repeatable: [%v, %v] then [%v, %v]", lo, hi, lo2, hi2)
	}
	if lo, hi := ratioCI(nil, b); !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Errorf("empty sample gave [%v, %v]", lo, hi)
	}
}

// TestSummariseCounts: failures are counted and left out of the timings;
// checks are counted per kind; a timed-out start stays in, censored.
func TestSummariseCounts(t *testing.T) {
	good := Checks{Done: true, Reparented: true, OwnSession: true, NoTTY: true, StdioNull: true, NothingLeft: true}
	tty := good
	tty.StdioNull, tty.SessionLeader, tty.KeptFDs = false, true, 1
	trials := []Trial{
		{Ready: 3 * time.Millisecond, Exit: 4 * time.Millisecond, Exited: true, Order: ExitAfter, Checks: good, Execs: 1, Inits: 1},
		{Ready: 5 * time.Millisecond, Exit: 2 * time.Millisecond, Exited: true, Order: ExitBefore, Checks: tty, Execs: 2, Inits: 2},
		{Err: "launcher exited with status 64"},
		{Ready: time.Second, ReadyTimeout: true, Exit: time.Second, Execs: -1},
	}
	s := Summarise(Contender{Key: "x"}, trials)
	switch {
	case s.Runs != 4 || s.Failed != 1 || s.FirstErr == "":
		t.Errorf("runs %d failed %d (%q)", s.Runs, s.Failed, s.FirstErr)
	case len(s.readySamples) != 3 || s.Timeouts != 1:
		t.Errorf("%d timed samples, %d timeouts", len(s.readySamples), s.Timeouts)
	case s.Ready.D != 5*time.Millisecond:
		t.Errorf("median %v", s.Ready)
	case s.Exited != 2 || s.Before != 1:
		t.Errorf("exited %d, before %d", s.Exited, s.Before)
	case s.Checked != 2 || s.StdioNotNull != 1 || s.AnyFailure != 1 || s.SessionLeader != 1 || s.KeptFDs != 1:
		t.Errorf("checks: %+v", s)
	case s.ExecMin != 1 || s.ExecMax != 2 || s.InitMin != 1 || s.InitMax != 2:
		t.Errorf("execve %d-%d, init %d-%d", s.ExecMin, s.ExecMax, s.InitMin, s.InitMax)
	}
}

// TestDiffCI: the interval of a difference of medians holds the
// difference, and is the same for the same data.
func TestDiffCI(t *testing.T) {
	a, b := ms_(12, 13, 11, 12, 14, 12, 11, 13), ms_(10, 11, 9, 10, 12, 10, 9, 11)
	lo, hi := diffCI(a, b)
	if lo > 2*time.Millisecond || hi < 2*time.Millisecond || lo >= hi {
		t.Errorf("interval [%v, %v] does not hold the 2ms difference", lo, hi)
	}
	if lo2, hi2 := diffCI(a, b); lo2 != lo || hi2 != hi {
		t.Errorf("not reproducible: [%v, %v] then [%v, %v]", lo, hi, lo2, hi2)
	}
}
