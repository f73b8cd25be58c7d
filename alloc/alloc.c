#include "alloc/alloc.h"

#include <sys/mman.h>

#if defined(HIVE_USE_JEMALLOC)
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
#endif

void mem_trim(void)
{
#if defined(HIVE_USE_JEMALLOC)
    /* 4096 is MALLCTL_ARENAS_ALL: every arena at once. */
    mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
#endif
}

void *mem_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void mem_unmap(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}
