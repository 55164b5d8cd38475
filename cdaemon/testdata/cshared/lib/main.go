// Package main is built with -buildmode=c-shared and -buildmode=c-archive
// by the tests, to check that the cdaemon package refuses to run in a
// shared library or an archive linked into a C program.
package main

import "C"

import _ "github.com/cdaemon/cdaemon/cdaemon"

// CdaemonTestPing is called by ../loader.c once the library is loaded,
// and by ../../carchive/main.c.
//
//export CdaemonTestPing
func CdaemonTestPing() C.int { return 42 }

func main() {}
