// Command app-gowrap is contender (2) of the benchmark as a gowrap user
// builds it: the readiness body (internal/readyapp) and gowrap, with cgo
// on. gowrap.Daemonize execs the binary in place with CDAEMON=1, so the
// constructor daemonizes the new image.
package main

import (
	"github.com/cdaemon/cdaemon/bench/internal/readyapp"
	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/gowrap"
)

func main() {
	readyapp.Program = "app-gowrap"
	readyapp.OnFail = func(err error) {
		if cdaemon.Daemonized() && !cdaemon.IsReady() {
			cdaemon.Fail(1, err)
		}
	}
	d, err := gowrap.Daemonize(gowrap.Options{})
	if err != nil {
		readyapp.Fail(err)
	}
	readyapp.Run("", d.Ready)
}
