package bench

import (
	"testing"
	"time"
)

// TestHarness runs the whole harness once for cdaemon: build, start with
// CDAEMON=1, wait for "hello", kill and reap. It proves the harness
// works (and that cdaemon's launcher exits only once its daemon answers);
// the numbers themselves come from cmd/benchrun.
func TestHarness(t *testing.T) {
	work := t.TempDir()
	bin, err := BuildDaemon(".", work)
	if err != nil {
		t.Fatal(err)
	}
	results, err := Run(Config{
		N: 1, Timeout: 20 * time.Second, Approaches: Approaches[:1],
		DaemonBin: bin, WorkDir: work,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || len(results[0].Samples) != 1 {
		t.Fatalf("want one sample of one approach, got %+v", results)
	}
	s := results[0].Samples[0]
	switch {
	case s.Err != nil:
		t.Fatalf("run failed: %v", s.Err)
	case s.ReadyTimeout || s.ExitTimeout:
		t.Fatalf("run reached the timeout: %+v", s)
	case !s.ReadyAtExit:
		t.Errorf("cdaemon's launcher exited before its daemon answered: %+v", s)
	case s.Starts != 1:
		t.Errorf("program starts = %d, want 1 (no exec after the launcher's)", s.Starts)
	case s.Ready <= 0 || s.Exit <= 0:
		t.Errorf("times not measured: %+v", s)
	}
	if left := Descendants(); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
	t.Logf("\n%s", Table(results))
}
