// Package noargs gives the examples that take no arguments (their
// settings are environment variables, as the constructor reads them) the
// command line a user expects of any program (issue 13): -h, --help and
// help print the usage on stdout and exit 0; anything else exits 2 with
// a message naming what was typed, then the usage.
//
// In a daemon the launcher is waiting and stdout is the log or
// /dev/null, so there the message goes back to the launcher through
// cdaemon.Fail, which prints it on the operator's terminal and exits
// with the same code: a mistyped argument never leaves a daemon running.
package noargs

import (
	"fmt"
	"os"

	"github.com/cdaemon/cdaemon/cdaemon"
)

// ExitBadArgs is the exit status of a bad command line (LSB, as gowrap's
// Control uses it).
const ExitBadArgs = 2

// Check returns when the command line is empty, and exits otherwise.
func Check(prog, usage string) {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) == 0:
		return
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		if !cdaemon.Daemonized() {
			fmt.Print(usage)
			os.Exit(0)
		}
		err = fmt.Errorf("%s: %s: the usage is printed without CDAEMON=1 (a daemon's stdout is its log)", prog, args[0])
	default:
		err = fmt.Errorf("%s: unexpected argument %q: %s takes none; its settings are environment variables (%s -h)", prog, args[0], prog, prog)
	}
	if cdaemon.Daemonized() {
		cdaemon.Fail(ExitBadArgs, err) // exits
	}
	fmt.Fprintf(os.Stderr, "%v\n%s", err, usage)
	os.Exit(ExitBadArgs)
}
