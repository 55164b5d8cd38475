//go:build cgoruntime

package main

// The Go runtime's cgo half (libc, the dynamic loader, threads through
// pthread_create) without any C code of our own.
import _ "runtime/cgo"
