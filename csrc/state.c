/*
 * The process state (struct cdaemon_state, internal.h) and every public
 * function that reads it. The units that change it include internal.h and
 * write the fields; what a caller may see of it is here, in one place,
 * and this unit calls no other: every unit can depend on it without a
 * circle.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct cdaemon_state cdaemon__state = {
	.ready_fd = -1,
	.out_fd = -1,
	.pid_fd = -1,
	.log_fd = -1,
	.worker_index = -1,
};

#define CDAEMON_VARIABLE_ENTRY(name, format, dflt, meaning, sample)          \
	{name, format, dflt, meaning, sample},
const struct cdaemon_variable cdaemon__variables[] = {
	CDAEMON_VARIABLES(CDAEMON_VARIABLE_ENTRY)};
#define NVARS (sizeof cdaemon__variables / sizeof cdaemon__variables[0])
const int cdaemon__nvariables = (int)NVARS;

/* Names in messages (cdaemon.h): the program, and per variable the
 * option a tool set it with ("" when none). */
static char prog_name[64] = "cdaemon";
static char option_names[NVARS][64];

int cdaemon__variable_index(const char *name)
{
	for (int i = 0; name != NULL && i < (int)NVARS; i++)
		if (strcmp(cdaemon__variables[i].name, name) == 0)
			return i;
	return -1;
}

void cdaemon_set_program_name(const char *name)
{
	snprintf(prog_name, sizeof prog_name, "%s",
		 name && *name ? name : "cdaemon");
}

int cdaemon_set_option_name(const char *variable, const char *option)
{
	int i = cdaemon__variable_index(variable);

	if (i < 0 || (option != NULL && (*option == '\0' ||
					 strlen(option) >= sizeof option_names[i]))) {
		errno = EINVAL;
		return -1;
	}
	snprintf(option_names[i], sizeof option_names[i], "%s",
		 option ? option : "");
	return 0;
}

const char *cdaemon__prog(void)
{
	return prog_name;
}

const char *cdaemon__setting(const char *variable)
{
	int i = cdaemon__variable_index(variable);

	return i >= 0 && option_names[i][0] ? option_names[i] : variable;
}

const char *cdaemon__subject(const char *variable, const char *value)
{
	static char bufs[4][4200];
	static unsigned next;
	char *b = bufs[next++ % 4];
	const char *name = cdaemon__setting(variable);

	/* A variable is shown as typed in the environment, an option as on
	 * a command line. */
	snprintf(b, sizeof bufs[0],
		 name == variable ? "%s=\"%s\"" : "%s \"%s\"", name,
		 value ? value : "");
	return b;
}

/* Writes only into cdaemon__state: the vfork child of sequence.c calls
 * it, and a vfork child may write nothing else of the launcher's. */
void cdaemon__record_stage(int stage)
{
	struct cdaemon_stage *s = &cdaemon__state.stages[stage];

	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->mono_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	s->recorded = 1;
	s->pid = getpid();
	s->ppid = getppid();
	s->pgid = getpgrp();
	s->sid = getsid(0);
}

int cdaemon_stage(int stage, struct cdaemon_stage *out)
{
	if (stage < 0 || stage >= CDAEMON_NSTAGES || out == NULL) {
		errno = EINVAL;
		return -1;
	}
	*out = cdaemon__state.stages[stage];
	return 0;
}

const char *cdaemon_stage_name(int stage)
{
	static const char *const names[CDAEMON_NSTAGES] = {
		[CDAEMON_STAGE_LAUNCHER] = "launcher",
		[CDAEMON_STAGE_CHILD] = "first child",
		[CDAEMON_STAGE_SESSION] = "after setsid",
		[CDAEMON_STAGE_DAEMON] = "daemon",
	};
	if (stage < 0 || stage >= CDAEMON_NSTAGES)
		return NULL;
	return names[stage];
}

const struct cdaemon_config *cdaemon_applied_config(void)
{
	return cdaemon__state.applied ? &cdaemon__state.config : NULL;
}

const char *cdaemon_launch_dir(void)
{
	return cdaemon__state.launch_dir[0] ? cdaemon__state.launch_dir : NULL;
}

const char *cdaemon_pidfile(void)
{
	return cdaemon__state.pidfile[0] ? cdaemon__state.pidfile : NULL;
}

const char *cdaemon_logfile(void)
{
	return cdaemon__state.logfile[0] ? cdaemon__state.logfile : NULL;
}

int cdaemon_daemonized(void)
{
	return cdaemon__state.daemonized;
}

int cdaemon_foreground(void)
{
	return cdaemon__state.foreground;
}

int cdaemon_is_ready(void)
{
	return cdaemon__state.ready;
}

int cdaemon_worker_index(void)
{
	return cdaemon__state.worker_index;
}

/* What the last cdaemon_listen_fds() found (listen.c fills it). */
const char *cdaemon_listen_name(int i)
{
	const struct cdaemon_state *st = &cdaemon__state;

	if (i < 0 || i >= st->nactivated)
		return NULL;
	return st->activated_names[i][0] ? st->activated_names[i] : "unknown";
}
