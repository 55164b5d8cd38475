// Command app-plain is the Go start-up floor of the benchmark: the
// readiness body (internal/readyapp) and nothing else, built with
// CGO_ENABLED=0 as a pure-Go, statically linked program. It is also the
// program `cdaemonize --notify` starts (BENCH_APPROACH=notify-fd3): any
// program works under cdaemonize, so it gets the plainest one.
//
// Built with -tags cgoruntime and cgo on, it links runtime/cgo and
// nothing more (cgoruntime.go): the cgo tax without cdaemon, for the tax
// measurements (bench/README.md, "Where the cgo tax goes").
package main

import (
	"fmt"
	"os"

	"github.com/cdaemon/cdaemon/bench/internal/readyapp"
)

func main() {
	readyapp.Program = "app-plain"
	switch a := os.Getenv("BENCH_APPROACH"); a {
	case "", "foreground":
		readyapp.Run("", nil)
	case "notify-fd3":
		readyapp.Run("", readyapp.NotifyFD3)
	default:
		readyapp.Fail(fmt.Errorf("BENCH_APPROACH=%q: unknown (have foreground, notify-fd3)", a))
	}
}
