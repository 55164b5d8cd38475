// Package cdaemon daemonizes a Go program before the Go runtime starts.
//
// # Why a constructor
//
// A Go program cannot fork: by the time main runs, the runtime has started
// several threads, and a forked child keeps only the one that called
// fork, with whatever locks the others held. So Go daemon libraries
// re-execute their own binary: a second image, every init() again, one
// fork with Setsid instead of Unix's double fork, and a launcher that
// returns before the daemon has done anything.
//
// This package carries a C function in the ELF .init_array of the program.
// It runs after the dynamic loader and libc are set up and before main —
// before the Go runtime exists, while the process has exactly one thread.
// When the environment asks for it (CDAEMON=1), it performs the real
// sequence there, the one of Ruby's rb_daemon and of systemd's daemon(7):
// close inherited fds, reset signal dispositions and mask, fork,
// TIOCNOTTY, setsid, fork, chdir, umask, stdio onto /dev/null or a log
// file, a locked pid file. Only the final daemon goes on to start the Go
// runtime. The launching process waits until the daemon calls Ready (and
// exits 0) or Fail (and exits with its code and message), or dies (and
// says how): its exit status tells the truth. Without CDAEMON the
// constructor does nothing, so the same binary runs in the foreground, and
// test binaries and subcommands are unaffected.
//
// The mechanism is written once, in C (the csrc directory, also built as
// libcdaemon for C programs); this package compiles it in and binds it.
// State crosses from C to Go through C globals, never new environment
// variables, which Go would not see (golang/go#27693); the CDAEMON*
// variables are removed from the environment before the runtime reads it,
// so programs the daemon starts do not daemonize again.
//
// # What it refuses
//
// A build without cgo does not compile (the constructor is C). A program
// linked with -ldflags=-linkmode=internal, which silently drops C
// constructors, exits 70 at init when CDAEMON is set, rather than staying
// in the foreground. -buildmode=c-shared and c-archive exit 70 at init:
// there the runtime starts from its own constructor, on another thread,
// before ours could fork (golang/go#31860).
//
// # Use
//
// A program that imports this package and calls Ready once it serves is a
// complete daemon when started with CDAEMON=1 (the CDAEMON_* variables in
// the README set the pid file, log, directory, umask, user, timeout, kept
// fds, and a prefork master with CDAEMON_WORKERS). Most programs want the
// higher-level package gowrap, which adds init-script commands, stop
// signals, log reopen and systemd.
package cdaemon
