/* Choosing the backend at start (io/ring.h). */
#include "io/ring.h"

#include <errno.h>
#include <stdio.h>
#include <hive.h>

#include "io/backend.h"
#include "io/fdgen.h"

const struct io_ops *io_ops = &uring_ops;
iob_done_fn iob_done;
bool iob_have_send_zc;
static const char *passed_over;   /* why io_uring does not run, or NULL */

void iob_set_handler(iob_done_fn fn)
{
    iob_done = fn;
}

unsigned iob_inflight(const struct ring *r)
{
    return r->inflight;
}

void iob_fd_new(int fd)
{
    fdgen_bump(fd);
}

void iob_fd_closing(struct ring *r, int fd)
{
    if (fd < 0)
        return;
    /* seq_cst: the generation first, then the other rings' fd sections
     * (io/fdgen.h), then what the backend does. */
    fdgen_bump(fd);
    fdgen_close_barrier(r);
    io_ops->fd_closing(r, fd);
}

int ring_select(int mode, struct ring *outside, const char **why)
{
    *why = NULL;
    passed_over = NULL;
    clock_init();
    if (mode != HIVE_IO_EPOLL) {
        io_ops = &uring_ops;
        int rc = ring_init(outside, 8, 0, why);
        if (rc == 0 && (rc = ring_probe(outside, why)) != 0)
            ring_fini(outside);
        if (rc == 0 || mode == HIVE_IO_URING)
            return rc;
        passed_over = *why ? *why : "io_uring unavailable";
    } else {
        passed_over = "HIVE_IO=epoll";
    }
    io_ops = &epoll_ops;
    iob_have_send_zc = false;
    *why = NULL;
    int rc = ring_init(outside, 8, 0, why);
    if (rc == 0)
        *why = passed_over;
    return rc;
}

const char *ring_backend(const char **why)
{
    if (why)
        *why = passed_over;
    return io_ops->name;
}

unsigned iob_lend_size(const struct ring *r)
{
    return r->lend_count ? IOB_LEND_SIZE : 0;
}
