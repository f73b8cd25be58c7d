/*
 * gen_server internals other runtime files need (introspection).
 */
#ifndef HIVE_GEN_SERVER_H
#define HIVE_GEN_SERVER_H

#include <stddef.h>

/* Bytes of the per-server context (struct hive_gs). */
size_t gs_context_bytes(void);

#endif
