// Package proctest provides helpers for tests that run real processes, in
// the spirit of net/http/httptest: building the program under test, making
// the test process a child subreaper so that daemons are reparented to it,
// looking at processes from outside through /proc (stat, status, fds,
// working directory, command line), finding the processes of a binary,
// reaping and killing children, and polling /proc with a deadline where
// the kernel sends no notification.
//
// It exists because the end-to-end tests of this repository (cdaemon,
// gowrap, the examples, the cdaemonize tool) all do these things, and each
// package used to carry its own copy of the same plumbing, each a little
// different. What is specific to one package stays in that package's
// tests.
//
// Conventions: the functions that read /proc return an error, for polling
// loops and cleanups where a process may be gone; those that take a
// testing.TB fail the test instead. Everything here is for tests, and for
// Linux only.
package proctest
