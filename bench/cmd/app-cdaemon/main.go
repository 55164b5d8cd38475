// Command app-cdaemon is contender (1) of the benchmark as a cdaemon user
// builds it: the readiness body (internal/readyapp) and the cdaemon
// package, nothing else, with cgo on. Started with CDAEMON=1 and
// BENCH_APPROACH=cdaemon, the constructor has daemonized it before the
// runtime started, and the launcher waits for Ready; the ready line
// carries the stage timestamps (cdaemon.Stages).
//
// With BENCH_APPROACH=foreground and no CDAEMON it is the cgo floor: the
// same program, the constructor linked in but not triggered. The
// benchmark builds it once per build recipe (bench/recipes.go).
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/cdaemon/cdaemon/bench/internal/readyapp"
	"github.com/cdaemon/cdaemon/cdaemon"
)

func main() {
	readyapp.Program = "app-cdaemon"
	readyapp.OnFail = func(err error) {
		if cdaemon.Daemonized() && !cdaemon.IsReady() {
			cdaemon.Fail(1, err)
		}
	}
	switch a := os.Getenv("BENCH_APPROACH"); a {
	case "cdaemon":
		if !cdaemon.Daemonized() {
			readyapp.Fail(fmt.Errorf("BENCH_APPROACH=cdaemon but not daemonized (CDAEMON=1 unset?)"))
		}
		// Where the time went: when the constructor began, and when
		// each process of the sequence recorded its stage.
		extra := " stages"
		for _, s := range cdaemon.Stages() {
			extra += " " + strconv.FormatInt(int64(s.Monotonic), 10)
		}
		readyapp.Run(extra, cdaemon.Ready)
	case "foreground":
		if cdaemon.Daemonized() {
			readyapp.Fail(fmt.Errorf("BENCH_APPROACH=foreground but daemonized (CDAEMON set?)"))
		}
		readyapp.Run("", nil)
	default:
		readyapp.Fail(fmt.Errorf("BENCH_APPROACH=%q: unknown (have cdaemon, foreground)", a))
	}
}
