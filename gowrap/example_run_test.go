package gowrap_test

import (
	"fmt"

	"github.com/cdaemon/cdaemon/gowrap"
)

// status finds the daemon by the lock on its pid file. Without a pid file
// it is not running: exit status 3, as LSB init scripts say. The program
// name is filepath.Base(os.Args[0]) ("gowrap.test" under go test).
func ExampleControl_status() {
	opts := gowrap.Options{PIDFile: "/nonexistent/gowrap-example.pid"}
	code := gowrap.Control([]string{"status"}, opts, nil)
	fmt.Println("exit status", code)
	// Output:
	// gowrap.test: not running
	// exit status 3
}

// Umask gives the pointer Options.Umask wants; nil keeps the inherited
// umask.
func ExampleUmask() {
	opts := gowrap.Options{Umask: gowrap.Umask(0o027)}
	fmt.Printf("%#o\n", uint32(*opts.Umask))
	// Output: 027
}

func ExampleMode_String() {
	fmt.Println(gowrap.PreRuntime, gowrap.Supervised)
	// Output: pre-runtime supervised
}
