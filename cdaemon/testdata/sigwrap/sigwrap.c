/*
 * sigwrap: start a program the way a careless parent would, so the tests
 * can prove that the launcher undoes it. Usage: sigwrap UMASK PROG [ARG...]
 *
 * SIGUSR1 and SIGTERM are blocked; SIGHUP, SIGINT and SIGUSR2 are ignored
 * (nohup-style); the umask is set to UMASK (octal). Blocked and ignored
 * signals both survive execve(2).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	sigset_t set;

	if (argc < 3) {
		fprintf(stderr, "usage: sigwrap UMASK PROG [ARG...]\n");
		return 2;
	}
	umask((mode_t)strtol(argv[1], NULL, 8));
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		perror("sigwrap: sigprocmask");
		return 2;
	}
	execv(argv[2], argv + 2);
	perror("sigwrap: execv");
	return 127;
}
