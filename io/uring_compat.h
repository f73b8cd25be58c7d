/* What liburing 2.3 (Debian bookworm) declares or lacks and hive needs,
 * done by hand: the one place for such fill-ins.
 *
 * io_uring_enable_rings: declared in 2.3's liburing.h but not exported
 * by its shared or static library; it is one io_uring_register call
 * (IORING_REGISTER_ENABLE_RINGS, Linux 5.10), made here directly. */
#ifndef HIVE_IO_URING_COMPAT_H
#define HIVE_IO_URING_COMPAT_H

#include <errno.h>
#include <liburing.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int hive_uring_enable_rings(struct io_uring *ring)
{
    long rc = syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return rc < 0 ? -errno : 0;
}

#endif
