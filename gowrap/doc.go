// Package gowrap is the Go API of cdaemon: options, readiness, stop
// signals, log reopen, pid files, systemd, and init-script commands.
//
// # Why
//
// A Go program cannot fork after its runtime started, so Go daemon
// libraries re-execute their binary and return before the daemon has done
// anything: the shell, the init script or systemd learn nothing about
// whether it came up. The cdaemon package daemonizes in a C constructor,
// before the runtime starts, and makes the launching process wait until
// the daemon says it is ready. gowrap puts a small Go API on top, so that
// the same program works in the three ways daemons are run:
//
//   - by hand or by an init script: `app start` (Control) or `app -d`
//     (Daemonize), or with CDAEMON=1 in the environment;
//   - under a supervisor (systemd with Type=notify, a container's init):
//     in the foreground, with readiness sent to NOTIFY_SOCKET and the
//     sockets of socket activation available through Listeners;
//   - in the foreground for debugging: `app run`.
//
// # Precedence
//
// Options hold the defaults written in code. Nine of them have a
// CDAEMON_* environment variable (see the README's table), and a variable
// that is set wins over the option: an operator can move the pid file or
// the log without a rebuild. The variables without an option (workers,
// listeners, the workers' stop timeout, noclose) are the operator's, and
// reach the daemon on every path, through start, restart and -d alike.
// Bad values are errors that name the variable and the value, parsed by
// the same C code the constructor uses, and exit 64 (ExitConfig) on every
// path.
//
// # Stopping
//
// Daemon.Context ends on SIGQUIT (graceful: finish what is in flight) or
// SIGINT/SIGTERM (quick); context.Cause tells which (ErrGracefulStop,
// ErrQuickStop). A second SIGINT or SIGTERM while stopping exits at once
// with status 128+signal. SIGHUP and SIGUSR1 reopen the log file, unicorn's
// way (open the new file, dup3 it over fds 1 and 2: never a moment without
// a writable fd, no line lost); SIGHUP then calls Options.OnReload.
//
// # Upgrade
//
// SIGUSR2 upgrades: a prefork master execs the binary now at its path and
// keeps its pid (csrc/prefork.c); a single-process daemon starts it as its
// child with the listeners, the pid file and a readiness channel, and once
// that child is Ready its Context ends gracefully (a StopError naming
// SIGUSR2): it finishes its requests and exits, and the child, which the
// pid file and systemd's MAINPID now name, serves on. A child that fails
// first is killed and the daemon serves on; so is one that is still
// starting when the daemon is asked to stop (the stop wins). Control's
// upgrade sends the signal and waits for the outcome; a second upgrade
// meanwhile is refused at once. A program that wants SIGUSR2 for itself
// calls signal.Notify for it after Daemonize, and then cannot be upgraded:
// Ready logs a warning, and Control's upgrade says the daemon did not
// answer.
//
// # Control
//
// Control implements start, stop, restart, status, reload, upgrade and run.
// status, stop and reload act only on a daemon the kernel vouches for
// (cdaemon.ProbePIDFile): the pid file names it and it holds that file
// open under its write lock, checked after pidfd_open, never by
// kill(pid, 0) nor by the file's content, which a daemon that dropped its
// privileges can rewrite. stop signals and waits through that pidfd, so a
// recycled pid cannot be hit, and escalates to SIGKILL after
// Options.KillAfter (or stop -timeout). That is the wait of the command
// typed; CDAEMON_STOP_TIMEOUT is another wait, the prefork master's for
// its workers. While a start is in progress (the pid file is
// locked and empty until Ready) status says "starting" and stop refuses.
//
// A systemd unit for a gowrap daemon:
//
//	[Service]
//	Type=notify
//	ExecStart=/usr/local/bin/app run
//	ExecReload=/bin/kill -HUP $MAINPID
//	KillSignal=SIGQUIT
//
// or, with the constructor's double fork and a truthful launcher:
//
//	[Service]
//	Type=forking
//	PIDFile=/run/app.pid
//	Environment=CDAEMON_PIDFILE=/run/app.pid
//	ExecStart=/usr/local/bin/app start
package gowrap
