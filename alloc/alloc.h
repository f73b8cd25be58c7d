/*
 * Memory for the runtime: jemalloc's sized allocation API (per-thread
 * caches; a block freed on another thread goes back through that thread's
 * cache without a lock). Sanitizer builds use the C library's malloc, which
 * the sanitizers interpose.
 */
#ifndef HIVE_ALLOC_H
#define HIVE_ALLOC_H

#include <stddef.h>
#include <stdlib.h>

#if defined(HIVE_USE_JEMALLOC)
void *mallocx(size_t size, int flags);
void  sdallocx(void *ptr, size_t size, int flags);
static inline void *mem_alloc(size_t size) { return malloc(size); }
static inline void  mem_free(void *p, size_t size) { if (p) sdallocx(p, size, 0); }
#else
static inline void *mem_alloc(size_t size) { return malloc(size); }
static inline void  mem_free(void *p, size_t size) { (void)size; free(p); }
#endif

static inline void *mem_zalloc(size_t size)
{
    void *p = mem_alloc(size);
    if (p)
        __builtin_memset(p, 0, size);
    return p;
}

/* The calling thread's allocator cache emptied, and every free page the
 * allocator holds given back to the kernel (jemalloc: the tcache flushed,
 * every arena purged). For a thread with nothing to do for a while; the
 * C library's malloc (sanitizer builds) is left as it is. */
void mem_trim(void);

/* Big zeroed regions straight from the kernel (process table chunks...). */
void *mem_map(size_t size);
void  mem_unmap(void *p, size_t size);

#endif
