/*
 * main: a C program linked with a Go -buildmode=c-archive archive that
 * imports cdaemon (../cshared/lib, built as an archive), calling its
 * exported function, which waits for the Go runtime's init. The cdaemon
 * package refuses this build mode from its init (exit 70), so the call
 * never returns.
 */
#include <stdio.h>

int CdaemonTestPing(void);

int main(void)
{
	printf("carchive: ping returned %d\n", CdaemonTestPing());
	return 0;
}
