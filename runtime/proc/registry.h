/*
 * The name registry (registry.c): the runtime side of hive_register.
 */
#ifndef HIVE_REGISTRY_H
#define HIVE_REGISTRY_H

#include <hive.h>
#include <stdbool.h>
#include <stdint.h>

struct proc;
struct mnode;
struct mon_cache;

/* --- registry (registry.c) --- */
int  registry_init(void);   /* 0 or -ENOMEM */
void registry_fini(void);
void registry_release(const char *name, hive_pid pid);
/* The registered name of pid (in slot p), copied into buf; false if none. */
bool registry_name_of(struct proc *p, hive_pid pid, char *buf, size_t len);

#endif
