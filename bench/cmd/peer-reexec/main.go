// Command peer-reexec is contender (3) of the benchmark, the re-exec
// reference (internal/reexec), as its users would build it: pure Go
// (CGO_ENABLED=0), statically linked, importing only the standard library
// besides the readiness body. TestPeersArePureGo checks the binary.
package main

import (
	"github.com/cdaemon/cdaemon/bench/internal/readyapp"
	"github.com/cdaemon/cdaemon/bench/internal/reexec"
)

func main() {
	readyapp.Program = "peer-reexec"
	if err := reexec.Daemonize(); err != nil {
		readyapp.Fail(err)
	}
	readyapp.Run("", nil)
}
