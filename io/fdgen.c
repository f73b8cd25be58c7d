#include "io/fdgen.h"

#include "io/ring.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mman.h>

_Atomic uint32_t *fdgen_table;
size_t fdgen_cap;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define RINGS_MAX 1088   /* schedulers (<= 1024) and the outside ring */
static struct ring *_Atomic rings[RINGS_MAX];
static _Atomic unsigned rings_high;   /* registered slots are below it */

unsigned fdgen_rings_high(void);
struct ring *fdgen_ring_at(unsigned slot);

static void make(void)
{
    /* As many numbers as the kernel hands out (fs.nr_open). */
    size_t cap = 1u << 20;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (f) {
        unsigned long v;
        if (fscanf(f, "%lu", &v) == 1 && v > 0)
            cap = v;
        fclose(f);
    }
    if (cap > (1u << 24))
        cap = 1u << 24;
    void *m = mmap(NULL, cap * sizeof *fdgen_table, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return; /* no generations: closes race starts as plain POSIX does */
    fdgen_table = m;
    fdgen_cap = cap;
}

void fdgen_init(void)
{
    pthread_once(&once, make);
}

int fdgen_register(struct ring *r)
{
    for (unsigned i = 0; i < RINGS_MAX; i++) {
        struct ring *none = NULL;
        if (atomic_compare_exchange_strong_explicit(&rings[i], &none, r, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            unsigned high = atomic_load_explicit(&rings_high, memory_order_relaxed);
            while (high <= i &&
                   !atomic_compare_exchange_weak_explicit(&rings_high, &high, i + 1,
                                                          memory_order_release,
                                                          memory_order_relaxed))
                ;
            r->fd_slot = i;
            return 0;
        }
    }
    return -ENOSPC;
}

void fdgen_unregister(struct ring *r)
{
    if (r->fd_slot < RINGS_MAX)
        atomic_store_explicit(&rings[r->fd_slot], NULL, memory_order_release);
    r->fd_slot = RINGS_MAX;
}

void fdgen_close_barrier(const struct ring *own)
{
    unsigned high = fdgen_rings_high();
    for (unsigned i = 0; i < high; i++) {
        struct ring *r = fdgen_ring_at(i);
        if (!r || r == own)
            continue;
        /* seq_cst: the closer's half of the pair (see fdgen.h). The
         * section is one system call long. */
        while (atomic_load_explicit(&r->fd_section, memory_order_seq_cst))
            sched_yield();
    }
}

unsigned fdgen_rings_high(void)
{
    return atomic_load_explicit(&rings_high, memory_order_acquire);
}

struct ring *fdgen_ring_at(unsigned slot)
{
    return atomic_load_explicit(&rings[slot], memory_order_acquire);
}
