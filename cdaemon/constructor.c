// The ELF constructor that daemonizes a Go program before its runtime
// starts. It runs from .init_array, after the dynamic loader and libc are
// set up and before main(), which for a cgo binary is where the Go runtime
// is born: the process has exactly one thread here, so fork() is safe.
//
// The default priority is deliberate: in -buildmode=c-shared and c-archive
// the Go runtime's own constructor (_rt0_amd64_linux_lib) runs first and
// starts a thread, and cdaemon_start's thread check then refuses to fork.
#include <stdlib.h>
#include <unistd.h>

#include "../csrc/cdaemon.h"
#include "../csrc/internal.h"
#include "csrc_hash.h"

// Part of the binary, so that builds can be matched to their C sources.
const char cdaemon_go_csrc_hash[] = CDAEMON_CSRC_HASH;

// Read by the Go side: the trigger set but this still 0 means the
// constructor was dropped, as -ldflags=-linkmode=internal does silently.
int cdaemon_go_constructor_ran;

__attribute__((constructor)) static void cdaemon_go_constructor(void)
{
	struct cdaemon_config cfg;
	char err[1024];

	cdaemon_go_constructor_ran = 1;
	// An upgrade (issue 16): the CDAEMON_* settings were scrubbed long
	// ago and the state says everything. A single-process daemon
	// started this image as its successor (gowrap): adopt its state and
	// return into the program, a daemon not ready yet. A prefork master
	// exec'd it to upgrade (or roll back) in place: returns only in its
	// new workers.
	int upgrade = cdaemon__upgrade_fd();
	if (upgrade >= 0 &&
	    cdaemon__upgrade_kind(upgrade) == CDAEMON_SINGLE_MAGIC) {
		cdaemon__single_adopt(upgrade);
		return;
	}
	if (upgrade >= 0) {
		(void)cdaemon__prefork_adopt(upgrade, 1);
		return;
	}
	// musl passes no arguments to constructors: everything comes from
	// the environment.
	int r = cdaemon_config_from_env(&cfg, err, sizeof err);
	if (r == 0)
		return;
	if (r < 0) {
		cdaemon__print(2, "%s\n", err);
		_exit(CDAEMON_EXIT_USAGE);
	}
	// Returns only in the daemon; the launcher exits with its status.
	(void)cdaemon_start(&cfg);
	// With CDAEMON_WORKERS this process becomes the prefork master and
	// returns only in the workers, each into a fresh Go runtime.
	// A spare returns too, and waits for its release in Go (Worker,
	// ListenFDs, Ready), with its runtime started: that start is what a
	// spare saves a replacement.
	(void)cdaemon__prefork(1);
}
