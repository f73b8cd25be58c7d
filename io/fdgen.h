/*
 * Descriptor generations, shared by the backends: a number per descriptor
 * that hive bumps whenever it makes a descriptor (accept, socket) and
 * before hive_io_close closes one. An operation records the generation
 * when it starts; if the number's generation moved before the operation
 * reached the kernel (io_uring: before its submission; epoll: before each
 * try), the descriptor it meant was closed, the number may already name a
 * new file, and the operation ends as the close's shutdown would have
 * ended it (closed_result) without touching the number.
 *
 * Between that check and the system call that hands the number to the
 * kernel, a ring is in its fd section (ring.fd_section = 1). The closer
 * bumps the generation, then waits for every other ring to be out of its
 * section (fdgen_close_barrier) before it shuts the descriptor down and
 * closes it. Dekker pair, both seq_cst: the ring sets fd_section then reads
 * the generation; the closer bumps the generation then reads fd_section.
 * Either the ring sees the bump (and does not use the number), or the
 * closer sees the section and waits until the kernel holds the file (an
 * io_uring request) or the call is done (epoll's try): no request ever
 * reaches a file that a later number reuse put under it.
 */
#ifndef HIVE_IO_FDGEN_H
#define HIVE_IO_FDGEN_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "io/backend.h"

extern _Atomic uint32_t *fdgen_table;
extern size_t fdgen_cap;    /* numbers at or past it have no generation (always 0) */

struct ring;

/* Makes the table (once per process; reserved, not committed). */
void fdgen_init(void);
/* Every ring that uses descriptor numbers is registered while it lives. */
int  fdgen_register(struct ring *r);
void fdgen_unregister(struct ring *r);
/* After fdgen_bump of a number about to be closed: waits until no ring
 * but own (may be NULL) is inside its fd section. */
void fdgen_close_barrier(const struct ring *own);
/* The registered rings: slots below fdgen_rings_high(), each NULL or a
 * ring (acquire: what the ring's owner set before registering is seen). */
unsigned     fdgen_rings_high(void);
struct ring *fdgen_ring_at(unsigned slot);

static inline uint32_t fdgen_of(int fd)
{
    return (size_t)fd < fdgen_cap
               ? atomic_load_explicit(&fdgen_table[fd], memory_order_seq_cst) : 0;
}

static inline void fdgen_bump(int fd)
{
    if (fd >= 0 && (size_t)fd < fdgen_cap)
        atomic_fetch_add_explicit(&fdgen_table[fd], 1, memory_order_seq_cst);
}

/* How an operation ends when its number was closed under it: as the
 * close's shutdown would have ended it. */
static inline int closed_result(const struct iop *op)
{
    switch (op->kind) {
    case IOP_RECV:
    case IOP_READ:
        return 0;
    case IOP_ACCEPT:
        return -EINVAL;
    case IOP_CONNECT:
        return -ECONNABORTED;
    default:
        return op->progress ? (int)op->progress : -EPIPE;
    }
}

#endif
