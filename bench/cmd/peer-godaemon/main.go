// Command peer-godaemon is contender (5) of the benchmark,
// VividCortex/godaemon, as its users build it: pure Go (CGO_ENABLED=0),
// statically linked, importing only godaemon besides the readiness body.
// TestPeersArePureGo checks the binary.
package main

import (
	"github.com/VividCortex/godaemon"
	"github.com/cdaemon/cdaemon/bench/internal/readyapp"
)

func main() {
	readyapp.Program = "peer-godaemon"
	if _, _, err := godaemon.MakeDaemon(&godaemon.DaemonAttr{}); err != nil {
		readyapp.Fail(err)
	}
	readyapp.Run("", nil)
}
