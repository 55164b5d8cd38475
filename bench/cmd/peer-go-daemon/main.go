// Command peer-go-daemon is contender (4) of the benchmark,
// sevlyar/go-daemon, as its users build it: pure Go (CGO_ENABLED=0),
// statically linked, importing only go-daemon besides the readiness body.
// TestPeersArePureGo checks the binary.
package main

import (
	"github.com/cdaemon/cdaemon/bench/internal/readyapp"
	godaemonize "github.com/sevlyar/go-daemon"
)

func main() {
	readyapp.Program = "peer-go-daemon"
	ctx := &godaemonize.Context{WorkDir: "/"}
	child, err := ctx.Reborn()
	if err != nil {
		readyapp.Fail(err)
	}
	if child != nil {
		return // the parent: go-daemon's launcher exits now
	}
	readyapp.Run("", nil)
}
