// Package main is built with -buildmode=c-shared by the tests, to check
// that the cdaemon package refuses to run in a shared library.
package main

import "C"

import _ "github.com/cdaemon/cdaemon/cdaemon"

// CdaemonTestPing is called by ../loader.c once the library is loaded.
//
//export CdaemonTestPing
func CdaemonTestPing() C.int { return 42 }

func main() {}
