/*
 * loader: dlopen a Go -buildmode=c-shared library that imports cdaemon and
 * call its exported function, which waits for the Go runtime's init. The
 * cdaemon package refuses this build mode from its init (exit 70), so the
 * call never returns. Usage: loader LIBRARY
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: loader LIBRARY\n");
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_NOW);
	if (h == NULL) {
		fprintf(stderr, "loader: dlopen: %s\n", dlerror());
		return 3;
	}
	int (*ping)(void);
	*(void **)&ping = dlsym(h, "CdaemonTestPing");
	if (ping == NULL) {
		fprintf(stderr, "loader: dlsym: %s\n", dlerror());
		return 4;
	}
	printf("loader: ping returned %d\n", ping());
	return 0;
}
