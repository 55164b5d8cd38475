/*
 * The CDAEMON_* variables: the one table of them (issue 12). Each line is
 *
 *   X(NAME, FORMAT, DEFAULT, MEANING, SAMPLE)
 *
 * NAME as the operator types it; FORMAT and DEFAULT as the README's
 * environment table says them; MEANING in one line; SAMPLE a value the
 * parser accepts (tests set every variable to it). The parser refuses a
 * name that is not here; tests check that the parser, the Go Config,
 * gowrap's pass-through to the re-executed daemon and the README's table
 * each know exactly these names. Adding a variable is a line here, plus
 * its use.
 */
#ifndef CDAEMON_VARIABLES_H
#define CDAEMON_VARIABLES_H

#define CDAEMON_VARIABLES(X)                                                  \
	X("CDAEMON", "1", "unset",                                             \
	  "trigger: daemonize before the Go runtime starts", "1")              \
	X("CDAEMON_PIDFILE", "path", "none",                                   \
	  "pid file, locked for the daemon's life", "/tmp/cdaemon-sample.pid") \
	X("CDAEMON_LOG", "path", "/dev/null",                                  \
	  "stdout and stderr appended here", "/tmp/cdaemon-sample.log")        \
	X("CDAEMON_DIR", "path", "/", "working directory of the daemon", "/")  \
	X("CDAEMON_UMASK", "octal 000-777", "inherited",                       \
	  "umask of the daemon", "027")                                        \
	X("CDAEMON_TIMEOUT", "duration", "60s",                                \
	  "how long the launcher may take in all", "10s")                      \
	X("CDAEMON_KEEP_FDS", "fd numbers, comma-separated", "none",           \
	  "inherited fds kept open at their numbers", "0")                     \
	X("CDAEMON_NOCLOSE", "1 or 0", "0", "keep fds 0-2 as they are", "1")   \
	X("CDAEMON_FOREGROUND", "1 or 0", "0",                                 \
	  "every step but the forks, for supervisors", "1")                    \
	X("CDAEMON_USER", "name or number", "stay",                            \
	  "drop privileges to this user", "root")                              \
	X("CDAEMON_GROUP", "name or number", "the user's",                     \
	  "drop privileges to this group", "root")                             \
	X("CDAEMON_LISTEN", "tcp:HOST:PORT, unix:/PATH, ...", "none",          \
	  "sockets bound by the launcher, passed at fd 3 on",                  \
	  "tcp:127.0.0.1:0")                                                   \
	X("CDAEMON_WORKERS", "1-1024", "none",                                 \
	  "prefork: this many Go workers forked by a C master", "2")           \
	X("CDAEMON_STOP_TIMEOUT", "duration", "30s",                           \
	  "prefork: how long a stop waits for workers before KILL", "5s")      \
	X("CDAEMON_SPARES", "0-64", "0",                                       \
	  "prefork: workers kept started, not serving, to replace one at once", \
	  "1")                                                                 \
	X("CDAEMON_INIT", "1 or 0", "1 as PID 1 in the foreground, else 0",    \
	  "stay behind as a tiny init: forward signals, reap zombies", "1")

#endif
