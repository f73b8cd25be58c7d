/*
 * hive — Erlang/OTP's process model for native Linux servers.
 *
 * The one public header. Everything here follows the public contract
 * (names and meanings are fixed); everything not here is internal.
 *
 * Conventions: functions that can fail return int, 0 (or a non-negative
 * value) on success and a negative errno on failure. Times are milliseconds,
 * HIVE_INFINITY (-1) means no timeout. Blocking functions may only be called
 * from inside a hive process (otherwise -EPERM); hive_send, hive_cast and
 * hive_kill work from any thread.
 *
 * ABI: every function declared here carries HIVE_API, and nothing else in
 * libhive.so is exported (the library is built with hidden visibility). A
 * new public function needs HIVE_API or programs linking the shared library
 * will not find it; scripts/test-install.sh checks that every exported
 * symbol starts with hive_.
 */
#ifndef HIVE_H
#define HIVE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exports a declaration from libhive.so. */
#if defined(__GNUC__) || defined(__clang__)
#define HIVE_API __attribute__((visibility("default")))
#else
#define HIVE_API
#endif

#define HIVE_VERSION_MAJOR 0
#define HIVE_VERSION_MINOR 1
#define HIVE_VERSION_PATCH 0

#define HIVE_INFINITY ((int64_t)-1)

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* A static string for a negative errno (or HIVE_IGNORE) that also names the
 * OTP equivalent where there is one: -ETIMEDOUT -> "timeout", -ESRCH ->
 * "noproc", ... Never NULL. */
HIVE_API const char *hive_strerror(int err);

/* ------------------------------------------------------------------ */
/* Runtime                                                             */
/* ------------------------------------------------------------------ */

typedef struct hive_config {
    unsigned schedulers;   /* 0 = one per online CPU */
    bool     pin;          /* pin each scheduler thread to a core; default true */
    size_t   stack_size;   /* per-process stack reservation; default 256 KiB */
    unsigned max_processes;/* default 1 << 20, at most 1 << 24 */
    unsigned ring_entries; /* io_uring SQ entries per scheduler; default 256 */
    bool     sqpoll;       /* IORING_SETUP_SQPOLL; default false */
    unsigned spin_us;      /* busy-poll before a scheduler parks; default 50 */
    size_t   max_message;  /* largest message payload; default 64 MiB */
    /* Fields below are hive's own additions. */
    unsigned shutdown_ms;  /* at runtime stop, how long processes that trap exits
                              get after the shutdown exit before they are killed;
                              default 5000 */
    unsigned budget;       /* reductions (sends, receives, spawns, yields) a
                              process runs before it is put at the back of the
                              queue; default 2000 */
    int      guard_stacks; /* guard pages. With the kernel's guard regions
                              (Linux 6.13) every stack of the default size
                              has one (arenas of 64, their guards installed
                              by one system call) and this bounds only
                              stacks of other sizes, mapped alone. Elsewhere:
                              how many stacks get their own mapping with a
                              guard page; beyond it stacks come from arenas
                              (one mapping per 64) with a canary check at
                              every switch. Default 1024, -1 =
                              vm.max_map_count / 4, 0 = no guard pages */
    bool     backpressure; /* a process that sends to a flooded receiver (one
                              that used a whole slice receiving and still has
                              messages queued) ends its time slice there: it
                              is never blocked, it goes to the back of its run
                              queue so the receiver gets the core; default
                              true */
    bool     defer_taskrun; /* io_uring: make each scheduler's ring
                              SINGLE_ISSUER | DEFER_TASKRUN (completions'
                              work runs only when the scheduler enters the
                              kernel to take it); default false: measured no
                              faster than COOP_TASKRUN on the example servers
                              (docs/io.md). Kernels before 6.1 fall back with
                              a line on stderr. In the padding after
                              backpressure: the struct's size and layout are
                              unchanged */
    bool     flood_move;   /* with backpressure: a process whose slice ends
                              at a send to a receiver flooded on another
                              scheduler moves to that scheduler, and one
                              whose receiver is flooded on its own is held
                              there where no idle scheduler can take it,
                              until a slice of its ends without such a
                              send; default true (docs/performance.md,
                              "Flooding senders"). Also in that padding */
    int      io_backend;   /* HIVE_IO_AUTO (default): io_uring when the kernel
                              lets hive set it up and has every opcode it
                              needs, else epoll; HIVE_IO_URING: io_uring or
                              fail with the reason; HIVE_IO_EPOLL */
    unsigned recv_bufs;    /* receive buffers of 4 KiB each scheduler lends
                              to receives of at most 4 KiB (hive_io_recv,
                              hive_io_recv_async): such a receive holds no
                              buffer while it waits, it gets one when its
                              data arrive (io_uring: a provided-buffer
                              ring). 0 or a power of two up to 32768;
                              default 256 (1 MiB of address space per
                              scheduler, resident once used); 0: every
                              receive has its own buffer from its start */
    size_t   send_zc;      /* io_uring: pieces of a hive_io_send of at least
                              this many bytes go as zero-copy sends
                              (IORING_OP_SEND_ZC, Linux 6.0): the kernel
                              sends from the request's own copy of the data
                              and the call returns once it says it no
                              longer reads it; 0 (default): never, as
                              measured slower on loopback (docs/io.md); no
                              effect on epoll */
    unsigned trim_ms;      /* a scheduler on which nothing has run for this
                              long gives back what it keeps warm for busy
                              times: the stacks in its cache beyond 64 and
                              in the global pool beyond 64, and the
                              allocator's free pages (once per quiet spell);
                              default 100; 0: never */
    unsigned steal_grace_us; /* an idle scheduler takes a process from another's
                              queue holding fewer than 3 only once that queue's
                              head has not moved for this long (its owner is
                              busy with something long); longer queues are
                              robbed at once. Default 100; 0: at once too. Longer
                              keeps processes that talk to each other on one
                              core (docs/performance.md, "The steal grace") */
} hive_config;

enum { HIVE_IO_AUTO = 0, HIVE_IO_URING = 1, HIVE_IO_EPOLL = 2 };

HIVE_API void hive_config_default(hive_config *cfg);
/* Overrides cfg fields from HIVE_SCHEDULERS, HIVE_PIN, HIVE_STACK_SIZE,
 * HIVE_MAX_PROCESSES, HIVE_RING_ENTRIES, HIVE_SQPOLL, HIVE_SPIN_US,
 * HIVE_MAX_MESSAGE, HIVE_SHUTDOWN_MS, HIVE_BUDGET,
 * HIVE_GUARD_STACKS, HIVE_BACKPRESSURE, HIVE_IO (auto, uring, epoll), HIVE_RECV_BUFS,
 * HIVE_SEND_ZC. -EINVAL and a message on
 * stderr naming the variable when a value is bad (cfg is then unchanged). */
HIVE_API int  hive_config_from_env(hive_config *cfg);

/* Start the runtime, run main_fn(arg) as the first process, return when it
 * exits (after shutting every other process down): 0 or -errno. NULL cfg ==
 * defaults. Where io_uring is not available (a seccomp filter, the sysctl
 * kernel.io_uring_disabled, an old kernel) it runs on epoll and says so in
 * one line on stderr; with io_backend HIVE_IO_URING it fails at once
 * instead, with a message naming the cause. */
HIVE_API int  hive_main(const hive_config *cfg, void (*main_fn)(void *), void *arg);

/* ------------------------------------------------------------------ */
/* Processes and messages                                              */
/* ------------------------------------------------------------------ */

typedef uint64_t hive_pid;               /* slot + generation; 0 == HIVE_NOPID */
#define HIVE_NOPID ((hive_pid)0)

typedef struct { uint64_t hi, lo; } hive_ref;   /* unique per runtime */

typedef int64_t hive_reason;
#define HIVE_NORMAL   ((hive_reason)0)
#define HIVE_SHUTDOWN ((hive_reason)-1)
#define HIVE_KILL     ((hive_reason)-2)  /* untrappable when sent with hive_kill */
#define HIVE_KILLED   ((hive_reason)-3)
#define HIVE_NOPROC   ((hive_reason)-4)
#define HIVE_TIMEOUT  ((hive_reason)-5)
#define HIVE_ERROR    ((hive_reason)-6)  /* a callback failed (e.g. an unexpected call) */
#define HIVE_OVERFLOWED ((hive_reason)-7) /* killed by its full mailbox (HIVE_OVERFLOW_KILL);
                                            untrappable, like HIVE_KILL */
#define HIVE_NOMEM    ((hive_reason)-8)  /* the runtime could not get memory the process
                                            needed to go on (a stack for a handler process
                                            woken by a message, a trapped exit message) */

/* Tags: user tags are < HIVE_TAG_SYSTEM. */
#define HIVE_TAG_SYSTEM 0xFFFF0000u
#define HIVE_TAG_DOWN   0xFFFF0001u      /* payload: hive_down */
#define HIVE_TAG_EXIT   0xFFFF0002u      /* payload: hive_exit_signal */

typedef struct hive_msg {
    uint32_t tag;     /* user tags are < HIVE_TAG_SYSTEM */
    uint32_t len;     /* payload bytes */
    hive_pid from;    /* sender, or HIVE_NOPID */
    hive_ref ref;     /* set on replies, DOWN messages, timer messages */
    void    *data;    /* payload, 16-byte aligned */
} hive_msg;

#define HIVE_LINK    0x1u
#define HIVE_MONITOR 0x2u

/* Mailbox limits: what a send to a full mailbox does, the receiver's choice.
 * The limit counts what others send with hive_send, hive_send_msg,
 * hive_cast and hive_call / hive_send_request requests; replies to the
 * process's own calls, DOWN and EXIT messages, timer messages and I/O
 * completions are never dropped, rejected or counted. The queue may exceed
 * max_queue by at most one message per thread sending at that instant. */
enum hive_overflow {
    HIVE_OVERFLOW_REJECT = 0,   /* the send fails with -EAGAIN; nothing is queued */
    HIVE_OVERFLOW_DROP_NEWEST,  /* the send returns 0; the new message is dropped */
    HIVE_OVERFLOW_DROP_OLDEST,  /* the oldest queued user message is dropped to make room */
    HIVE_OVERFLOW_KILL          /* the receiver is killed with HIVE_OVERFLOWED */
};

typedef struct hive_spawn_opts {
    unsigned  flags;      /* HIVE_LINK | HIVE_MONITOR */
    hive_ref *monitor;    /* receives the monitor ref with HIVE_MONITOR */
    size_t    stack_size; /* 0 = the runtime's stack_size */
    uint32_t           max_queue; /* user messages; 0 = unbounded (default) */
    enum hive_overflow overflow;  /* default (0) reject; another value: -EINVAL */
} hive_spawn_opts;        /* NULL opts == all defaults */

HIVE_API int      hive_spawn(void (*fn)(void *), void *arg, hive_pid *out);
HIVE_API int      hive_spawn_opt(void (*fn)(void *), void *arg, const hive_spawn_opts *opts,
                                 hive_pid *out);
HIVE_API hive_pid hive_self(void);                 /* HIVE_NOPID outside a process */
HIVE_API int      hive_send(hive_pid to, uint32_t tag, const void *data, size_t len); /* copies */
HIVE_API hive_msg *hive_msg_alloc(size_t len);     /* NULL if len > max_message or no memory */
HIVE_API int      hive_send_msg(hive_pid to, hive_msg *m); /* on failure the caller still owns m */
HIVE_API void     hive_msg_free(hive_msg *m);      /* NULL is a no-op */
HIVE_API int      hive_receive(hive_msg **out, int64_t timeout_ms);
HIVE_API int      hive_receive_if(bool (*match)(const hive_msg *, void *), void *ctx,
                                  hive_msg **out, int64_t timeout_ms);
HIVE_API int      hive_yield(void);
HIVE_API _Noreturn void hive_exit(hive_reason reason);
HIVE_API int      hive_kill(hive_pid pid, hive_reason reason);
HIVE_API bool     hive_is_alive(hive_pid pid);

/* Refs: a fresh runtime-unique reference (works from any thread). */
HIVE_API hive_ref hive_make_ref(void);
static inline bool hive_ref_eq(hive_ref a, hive_ref b) { return a.hi == b.hi && a.lo == b.lo; }

/* ------------------------------------------------------------------ */
/* Links, monitors, exits                                              */
/* ------------------------------------------------------------------ */

#define HIVE_FLUSH 0x1u

typedef struct hive_down {
    hive_ref    ref;
    hive_pid    pid;
    hive_reason reason;
} hive_down;

typedef struct hive_exit_signal {
    hive_pid    from;
    hive_reason reason;
} hive_exit_signal;

HIVE_API int  hive_link(hive_pid pid);
HIVE_API int  hive_unlink(hive_pid pid);
HIVE_API int  hive_monitor(hive_pid pid, hive_ref *mref);
HIVE_API int  hive_demonitor(hive_ref mref, unsigned flags);
HIVE_API bool hive_trap_exits(bool on);

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

typedef struct { uint64_t id; } hive_timer;

HIVE_API int     hive_send_after(hive_pid to, uint32_t tag, const void *data, size_t len,
                                 int64_t ms, hive_timer *out);
HIVE_API int     hive_send_interval(hive_pid to, uint32_t tag, const void *data, size_t len,
                                    int64_t ms, hive_timer *out);
HIVE_API int64_t hive_cancel_timer(hive_timer t);  /* ms left, or -ENOENT if it already fired */
HIVE_API int     hive_sleep(int64_t ms);

/* ------------------------------------------------------------------ */
/* Registry                                                            */
/* ------------------------------------------------------------------ */

#define HIVE_NAME_MAX 63

HIVE_API int      hive_register(const char *name, hive_pid pid);
HIVE_API int      hive_unregister(const char *name);
HIVE_API hive_pid hive_whereis(const char *name);

/* ------------------------------------------------------------------ */
/* gen_server                                                          */
/* ------------------------------------------------------------------ */

#define HIVE_IGNORE 1

typedef struct hive_gs hive_gs;
typedef struct { hive_pid pid; hive_ref ref; } hive_from;

typedef struct hive_gen_server {
    int  (*init)(hive_gs *gs, void *arg, void **state);
    void (*handle_call)(hive_gs *gs, void *state, const hive_msg *req, hive_from from);
    void (*handle_cast)(hive_gs *gs, void *state, const hive_msg *msg);
    void (*handle_info)(hive_gs *gs, void *state, const hive_msg *msg);
    void (*handle_continue)(hive_gs *gs, void *state, const hive_msg *cont);
    void (*terminate)(hive_gs *gs, void *state, hive_reason reason);
} hive_gen_server;

typedef struct hive_gs_opts {
    const char *name;
    unsigned    flags;    /* HIVE_LINK (to the caller) */
    uint32_t           max_queue; /* as in hive_spawn_opts: 0 = unbounded (default) */
    enum hive_overflow overflow;  /* default (0) reject; a full server under reject
                                     makes hive_call return -EAGAIN at once */
} hive_gs_opts;

HIVE_API int  hive_gs_start(const hive_gen_server *b, void *arg, const hive_gs_opts *opts,
                            hive_pid *out);
HIVE_API int  hive_call(hive_pid server, uint32_t tag, const void *req, size_t len,
                        hive_msg **reply, int64_t timeout_ms);
HIVE_API int  hive_call_name(const char *name, uint32_t tag, const void *req, size_t len,
                             hive_msg **reply, int64_t timeout_ms);
HIVE_API hive_reason hive_call_reason(void);
HIVE_API int  hive_cast(hive_pid server, uint32_t tag, const void *msg, size_t len);
HIVE_API int  hive_cast_name(const char *name, uint32_t tag, const void *msg, size_t len);
HIVE_API int  hive_reply(hive_from from, uint32_t tag, const void *data, size_t len);
HIVE_API void hive_gs_stop_self(hive_gs *gs, hive_reason reason);
HIVE_API void hive_gs_continue(hive_gs *gs, uint32_t tag, const void *data, size_t len);
/* From inside a callback: the state every later callback and terminate get
 * (the callback's own state argument is not changed); ignored elsewhere. */
HIVE_API void hive_gs_set_state(hive_gs *gs, void *state);
HIVE_API int  hive_gs_stop(hive_pid server, hive_reason reason, int64_t timeout_ms);
HIVE_API int  hive_send_request(hive_pid server, uint32_t tag, const void *req, size_t len,
                                hive_ref *req_id);
HIVE_API int  hive_receive_response(hive_ref req_id, hive_msg **reply, int64_t timeout_ms);

/* ------------------------------------------------------------------ */
/* I/O (runtime/proc/io.c, docs/io.md)                                 */
/* ------------------------------------------------------------------ */

/* Blocking-style calls on plain Linux fds, carried by the calling
 * scheduler's io_uring: they park the process, never the scheduler thread,
 * and from a foreign thread return -EPERM (hive_tcp_listen and
 * hive_io_close work anywhere). A time-out cancels the operation in the
 * kernel and returns -ETIMEDOUT: never early, and data that arrived first
 * are returned, not lost; the fd stays usable. Exit signals act while a
 * process waits (a kill ends it there); its I/O in flight is cancelled and
 * the kernel never writes into the process's memory afterwards (buffers in
 * flight belong to the scheduler; see docs/io.md). Peer resets and broken
 * pipes are -ECONNRESET / -EPIPE, never SIGPIPE. One operation moves at
 * most 256 KiB: a larger recv or read returns what fits, a larger send or
 * write goes in pieces. */

/* host NULL = every IPv4 and IPv6 address (one dual-stack socket); port 0 =
 * ephemeral (see getsockname); SO_REUSEADDR and TCP_NODELAY (which accepted
 * connections inherit); backlog <= 0 = SOMAXCONN. 0 and *fd, or -errno
 * (-EADDRINUSE, -ENOENT for an unknown host, ...). */
HIVE_API int     hive_tcp_listen(const char *host, uint16_t port, int backlog, int *fd);
/* Resolves host (a numeric address never blocks; a name may block the
 * scheduler in getaddrinfo) and connects with hive_io_connect, trying each
 * address in turn within timeout_ms: 0 and *fd (TCP_NODELAY set), or -errno
 * (-ECONNREFUSED, -ETIMEDOUT, ...). */
HIVE_API int     hive_tcp_connect(const char *host, uint16_t port, int64_t timeout_ms, int *fd);
/* The new connection's fd (close-on-exec), or -errno. addr/addrlen as for
 * accept(2), both NULL or both set. */
HIVE_API int     hive_io_accept(int listen_fd, struct sockaddr *addr, socklen_t *addrlen,
                       int64_t timeout_ms);
HIVE_API int     hive_io_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                        int64_t timeout_ms);
/* Bytes received (at most len, at most 256 KiB), 0 at EOF, or -errno. */
HIVE_API ssize_t hive_io_recv(int fd, void *buf, size_t len, int64_t timeout_ms);
/* len: every byte went, or a negative errno (then how much went is unknown). */
HIVE_API ssize_t hive_io_send(int fd, const void *buf, size_t len, int64_t timeout_ms);
/* pread/pwrite-like; offset -1 = the file's current position. read returns
 * what one operation gave (0 at EOF); write returns len or -errno. */
HIVE_API ssize_t hive_io_read(int fd, void *buf, size_t len, int64_t offset, int64_t timeout_ms);
HIVE_API ssize_t hive_io_write(int fd, const void *buf, size_t len, int64_t offset, int64_t timeout_ms);
/* From any thread: ends the operations in flight on a socket (shutdown:
 * a pending recv sees EOF, a pending accept -EINVAL), then closes it. */
HIVE_API int     hive_io_close(int fd);
/* Erlang's {active, once}: the next data arrive as a message to the caller
 * with tag HIVE_TAG_IO, msg->ref = *req, the bytes as the payload (at most
 * max_len and 256 KiB; len 0: EOF); an error arrives as tag
 * HIVE_TAG_IO_ERROR with an int payload (-errno). The request is the
 * caller's until the message arrives or the caller exits. A gen_server
 * handles its socket in handle_info this way. */
HIVE_API int     hive_io_recv_async(int fd, size_t max_len, hive_ref *req);
#define HIVE_TAG_IO        0xFFFF0010u
#define HIVE_TAG_IO_ERROR  0xFFFF0011u

/* ------------------------------------------------------------------ */
/* Supervisors (runtime/otp/supervisor.c)                              */
/* ------------------------------------------------------------------ */

/* OTP's supervisor and Elixir's Supervisor / DynamicSupervisor. A
 * supervisor is a gen_server that traps exits: it learns of a child's death
 * from the link's EXIT message, and holds no stack while idle. */

#define HIVE_BRUTAL_KILL ((int64_t)-2)   /* child shutdown: kill at once */
enum hive_restart  { HIVE_PERMANENT = 0, HIVE_TRANSIENT, HIVE_TEMPORARY };
enum hive_strategy { HIVE_ONE_FOR_ONE = 0, HIVE_ONE_FOR_ALL, HIVE_REST_FOR_ONE };
enum hive_child_type { HIVE_WORKER = 0, HIVE_SUPERVISOR };

typedef struct hive_child_spec {
    const char *id;                  /* unique within a static supervisor (copied);
                                        ignored by dynamic ones (may be NULL there) */
    int  (*start)(void *arg, hive_pid *out);
         /* runs in the supervisor's process and must start the child linked
            to the caller (hive_gs_start with HIVE_LINK, hive_spawn_opt with
            HIVE_LINK, a nested hive_sup_start with HIVE_LINK): 0 and *out,
            HIVE_IGNORE (no child, spec kept), or a negative errno */
    void *arg;
    enum hive_restart restart;       /* default (0) permanent */
    int64_t shutdown_ms;             /* 0 = default: 5000 for a worker, HIVE_INFINITY for a
                                        supervisor; HIVE_BRUTAL_KILL; HIVE_INFINITY */
    enum hive_child_type type;       /* default (0) worker */
} hive_child_spec;

typedef struct hive_sup_opts {
    enum hive_strategy strategy;     /* default (0) one_for_one */
    int      intensity;              /* max restarts ... */
    int64_t  period_ms;              /* ... within this window; defaults 3 and 5000 */
    unsigned max_children;           /* dynamic supervisors: 0 = no limit */
    const char *name;                /* register the supervisor, or NULL */
    unsigned flags;                  /* HIVE_LINK (to the caller) */
} hive_sup_opts;

/* NULL opts == these defaults; a zeroed struct is not: intensity is taken
 * as given (0 = no restart allowed) and a period_ms below 1 is -EINVAL. */
HIVE_API void hive_sup_opts_default(hive_sup_opts *o);

/* Returns after every child has started, in list order: 0, or the error of
 * the first child whose start failed (the children already started are
 * shut down in reverse order first, the supervisor is gone and its name
 * free), -EINVAL (bad opts or spec), -EEXIST (duplicate id, or the name is
 * taken: then *out = the running process). */
HIVE_API int hive_sup_start(const hive_child_spec *children, size_t n, const hive_sup_opts *opts,
                   hive_pid *out);
HIVE_API int hive_sup_start_child(hive_pid sup, const hive_child_spec *spec, hive_pid *out);
HIVE_API int hive_sup_terminate_child(hive_pid sup, const char *id);
HIVE_API int hive_sup_restart_child(hive_pid sup, const char *id, hive_pid *out);
HIVE_API int hive_sup_delete_child(hive_pid sup, const char *id);

typedef struct hive_child_info {
    char id[HIVE_NAME_MAX + 1];      /* "" for a dynamic supervisor's children */
    hive_pid pid;                    /* HIVE_NOPID: not running (terminated, ignored) */
    enum hive_child_type type;
    bool restarting;                 /* being restarted right now */
} hive_child_info;
typedef struct hive_child_counts { unsigned specs, active, supervisors, workers; } hive_child_counts;

/* Returns the total, fills at most max, in start order. */
HIVE_API int hive_sup_which_children(hive_pid sup, hive_child_info *out, size_t max);
HIVE_API int hive_sup_count_children(hive_pid sup, hive_child_counts *out);

HIVE_API int hive_dynsup_start(const hive_sup_opts *opts, hive_pid *out);  /* one_for_one, no static children */
HIVE_API int hive_dynsup_start_child(hive_pid sup, const hive_child_spec *spec, hive_pid *out);
HIVE_API int hive_dynsup_terminate_child(hive_pid sup, hive_pid child);

/* ------------------------------------------------------------------ */
/* Tasks (runtime/otp/task.c, stream.c)                                */
/* ------------------------------------------------------------------ */

/* Elixir's Task and Task.Supervisor. A task's result is a void *, like a
 * thread's (the caller and the task share memory). */
typedef struct hive_task { hive_pid pid; hive_ref ref; hive_pid owner; } hive_task;

HIVE_API int hive_task_async(void *(*fn)(void *arg), void *arg, hive_task *out);  /* linked + monitored */
HIVE_API int hive_task_await(hive_task *t, int64_t timeout_ms, void **result);
HIVE_API int hive_task_yield(hive_task *t, int64_t timeout_ms, void **result);
HIVE_API int hive_task_shutdown(hive_task *t, int64_t timeout_ms, void **result);  /* or HIVE_BRUTAL_KILL */

HIVE_API int hive_task_sup_start(const hive_sup_opts *opts, hive_pid *out);
HIVE_API int hive_task_sup_async_nolink(hive_pid sup, void *(*fn)(void *arg), void *arg, hive_task *out);

/* How a task reports, until an await, yield or shutdown takes it:
 * - As in Elixir, a message with tag HIVE_TAG_TASK_REPLY from the task
 *   (msg->from == task.pid, msg->ref == task.ref; the payload starts with
 *   the result, a void *), then its DOWN (msg->ref == task.ref, reason
 *   HIVE_NORMAL): the tasks of hive_task_sup_async_nolink, and those that
 *   a gen_server starts with hive_task_async (which unlink themselves
 *   before they reply). A gen_server that does not await them takes both
 *   in handle_info: hive_task_reply_of, then hive_demonitor(task.ref,
 *   HIVE_FLUSH) to drop the DOWN.
 * - hive_task_async from any other process: the result waits in the task
 *   (which lingers, holding its process, until taken or until its owner
 *   exits); the owner gets no message for a task that delivered, so that
 *   awaiting any one of many tasks costs O(1).
 * A task that dies without a result sends its DOWN (and, linked, its exit
 * signal). Await, yield and shutdown work the same on both. */
#define HIVE_TAG_TASK_REPLY (HIVE_TAG_SYSTEM - 0x100u)
/* True if m is the reply of task t (any task's reply if t is NULL), with
 * its result in *result (result may be NULL). Does not end the task: a
 * reply taken this way is not there for a later await of it. */
HIVE_API bool hive_task_reply_of(const hive_msg *m, const hive_task *t, void **result);

typedef struct hive_stream hive_stream;
typedef struct hive_stream_opts {
    unsigned max_concurrency;   /* 0 = the number of schedulers */
    bool     unordered;         /* default (false): results in input order */
    int64_t  timeout_ms;        /* per item; 0 = 5000; HIVE_INFINITY */
    bool     kill_on_timeout;   /* false (on_timeout: :exit): a time-out ends the stream with
                                   -ETIMEDOUT and stops every running task; true (:kill_task):
                                   that item yields -ETIMEDOUT and the stream goes on */
    hive_pid supervisor;        /* HIVE_NOPID: tasks linked to the caller; a task supervisor:
                                   async_stream_nolink (a crash is that item's -ECONNRESET) */
} hive_stream_opts;
HIVE_API int  hive_task_async_stream(size_t n, void *(*fn)(void *ctx, size_t i), void *ctx,
                            const hive_stream_opts *opts, hive_stream **out);
/* 1 with *index and *result, 0 at the end, or a negative errno (with
 * *index set where it concerns one item). Owner only (-EPERM). */
HIVE_API int  hive_stream_next(hive_stream *s, size_t *index, void **result);
/* Stops what still runs and frees the stream. The owner (the process that
 * started it) may close it at any time. Another process or thread may
 * close it only once its owner has exited (its running tasks are killed
 * and it is freed); while the owner lives, such a close does nothing to
 * the stream, which stays the owner's to use and close, and sets errno to
 * EPERM. */
HIVE_API void hive_stream_close(hive_stream *s);

/* ------------------------------------------------------------------ */
/* Introspection                                                       */
/* ------------------------------------------------------------------ */

typedef struct hive_sched_stats {
    uint64_t msgs_sent;        /* messages sent by processes on this scheduler */
    uint64_t msgs_received;    /* messages handed to receivers */
    uint64_t switches;         /* context switches into processes */
    uint64_t steals;           /* processes taken from other schedulers */
    uint64_t parks;            /* times the scheduler slept in the kernel */
    uint64_t wakeups_sent;     /* wake-ups sent to parked schedulers */
    uint64_t ring_enters;      /* io_uring_enter system calls (0 on epoll) */
    uint64_t syscalls;         /* system calls the scheduler loop and the I/O layer
                                  made on this thread: io_uring: io_uring_enter to
                                  park, to wake a peer, to submit and cancel I/O;
                                  epoll: epoll_wait/epoll_pwait2, epoll_ctl, the
                                  eventfd writes that wake a peer, and every
                                  recv, send, read, write, accept, connect, fcntl,
                                  fstat and getsockopt an operation made;
                                  both: the reads of /proc/pressure/cpu
                                  (spin_pauses, at most one per 20 ms). NOT
                                  counted: hive_io_close's shutdown and close,
                                  the socket set-up of hive_tcp_*, the
                                  allocator's and the stacks' (mmap, munmap,
                                  mprotect, madvise) and futex waits; count
                                  those with strace -c -f or perf stat -e
                                  raw_syscalls:sys_enter */
    uint64_t timers_armed;
    uint64_t timers_fired;
    uint64_t timers_cancelled;
    uint64_t late_replies_dropped;
    uint64_t spawns;
    uint64_t exits;
    uint64_t backpressure_yields; /* slices ended by a send to a flooded
                                     receiver (hive_config.backpressure) */
    uint64_t wake_retries;        /* wake-ups of a parked scheduler that this
                                     scheduler's ring could not submit and
                                     that went through the shared ring instead */
    uint64_t io_submitted;     /* I/O operations (hive_io_*) queued on this
                                  scheduler's ring, one per operation: a
                                  send or write in pieces counts each piece;
                                  cancels not counted */
    uint64_t io_completed;     /* completions of such operations dispatched
                                  here (cancelled and timed-out ones included) */
    uint64_t io_cancels;       /* cancels sent to the kernel for operations
                                  whose process exited with them in flight
                                  (time-outs are io_timeouts) */
    /* Mailbox limits (hive_spawn_opts.max_queue): counted on the sender's
     * scheduler, drop-oldest drops on the receiver's. */
    uint64_t mailbox_rejected; /* sends that returned -EAGAIN: mailbox full */
    uint64_t mailbox_dropped;  /* messages dropped by a full mailbox (drop-newest,
                                  drop-oldest, and those that met an overflow kill) */
    uint64_t mailbox_overflow_kills; /* processes killed with HIVE_OVERFLOWED */
    uint64_t io_backend;       /* the backend this scheduler's I/O and parking
                                  run on: HIVE_IO_URING or HIVE_IO_EPOLL (in
                                  a total: the runtime's) */
    uint64_t io_recv_bufs;     /* receive buffers this scheduler lends
                                  (hive_config.recv_bufs; 0 when it lends
                                  none: set to 0, or a kernel without
                                  provided-buffer rings) */
    uint64_t io_recv_lent;     /* receives dispatched here whose data came
                                  in a lent buffer */
    uint64_t io_recv_nobufs;   /* receives that found every lent buffer in
                                  use and were run again with a buffer of
                                  their own */
    uint64_t io_send_zc;       /* pieces of hive_io_send queued here as
                                  zero-copy sends (hive_config.send_zc); a
                                  socket that refuses them (AF_UNIX) counts
                                  one, then gets plain sends */
    uint64_t quiet_trims;      /* times this scheduler, after trim_ms
                                  (hive_config) with nothing to run, trimmed
                                  what it kept warm
                                  for busy times: its cached stacks but 64,
                                  the global pool's but 64, the allocator's
                                  free pages (once per quiet spell) */
    uint64_t stacks_trimmed;   /* stacks those trims took out of this
                                  scheduler's cache and the global pool */
    uint64_t spin_pauses;      /* times this scheduler read the kernel's CPU
                                  pressure (/proc/pressure/cpu, at most
                                  every 20 ms while idle) and found that
                                  other threads had waited for a CPU more
                                  than 25% of the time since the last
                                  read, so that no scheduler spins for
                                  20 ms, doubling up to 1 s while it lasts */
    uint64_t flood_moves;      /* processes this scheduler moved to another
                                  scheduler because their slice ended at a
                                  send to a receiver flooded there
                                  (hive_config.flood_move) */
    uint64_t io_timeouts;      /* I/O operations on this scheduler's ring
                                  whose time-out passed before their
                                  completion came: io_uring sent the kernel
                                  a cancel for each (data that beat the
                                  cancel are still returned), epoll ended
                                  the wait */
} hive_sched_stats;

/* Fills up to n per-scheduler records (n may be 0), and *total (if not NULL)
 * with their sum plus what foreign threads did. Returns the number of
 * schedulers, or -EPERM when no runtime is running. */
HIVE_API int hive_stats(hive_sched_stats *per_sched, unsigned n, hive_sched_stats *total);

/* The I/O backend the running runtime chose: "io_uring" or "epoll" (NULL
 * when no runtime runs); *why (if not NULL) is why io_uring does not run,
 * e.g. "io_uring_setup was refused (EPERM): ...", or NULL. */
HIVE_API const char *hive_io_backend(const char **why);

/* ------------------------------------------------------------------ */
/* gen_server state access, process_info (runtime/gen_server.c, info.c) */
/* ------------------------------------------------------------------ */

/* gen_server choices the contract leaves open:
 * - NULL init: the state is the start argument. NULL handle_call or
 *   handle_cast: OTP's crash on a message without a clause; the server
 *   runs terminate and exits with HIVE_ERROR (a pending caller gets
 *   -ECONNRESET, hive_call_reason() == HIVE_ERROR). NULL handle_info:
 *   messages are dropped. A continue without handle_continue: HIVE_ERROR.
 *   NULL terminate: nothing.
 * - hive_gs_start: an init that exits (hive_exit, or killed) before it
 *   answers makes it return -ECONNRESET, hive_call_reason() saying why.
 * - A call whose server was exiting when it was called returns -ESRCH,
 *   like one whose server was dead: the call's DOWN says noproc.
 * - hive_send_request to a server that is not alive returns -ESRCH at
 *   once. hive_receive_response is OTP's receive_response: a timeout
 *   abandons the request (its reply, if any, is dropped), and a req_id that
 *   is not in flight is -EINVAL.
 * - hive_gs_stop, and the stop/exec requests below, are system messages:
 *   sent to a process that is not a gen_server, they are queued like any
 *   message (with a tag >= HIVE_TAG_SYSTEM) and the caller times out.
 * - The parent of a server started with HIVE_LINK is its starter: its exit
 *   stops a server that traps exits (terminate runs, exit reason = the
 *   parent's, even HIVE_NORMAL); other processes' exits reach handle_info.
 */

/* :sys.get_state / :sys.replace_state. Runs fn(state, ctx) inside the
 * server, between two callbacks (after the messages queued before this
 * request), and returns once it has run: 0, -EINVAL, -ESRCH (not alive),
 * -EDEADLK (self), -EPERM (not inside a process), -ECONNRESET (the server
 * exited first; hive_call_reason() says why) or -ETIMEDOUT. fn may read the
 * state or change it in place. When hive_gs_exec returns, fn is not running
 * and never will: a timeout that finds fn already started waits for it. */
HIVE_API int hive_gs_exec(hive_pid server, void (*fn)(void *state, void *ctx), void *ctx,
                          int64_t timeout_ms);
/* The server's state pointer (:sys.get_state); errors as hive_gs_exec. */
HIVE_API int hive_gs_get_state(hive_pid server, void **state, int64_t timeout_ms);

enum hive_proc_status {
    HIVE_STATUS_RUNNABLE = 1,  /* queued to run */
    HIVE_STATUS_RUNNING,       /* on a scheduler now */
    HIVE_STATUS_WAITING,       /* in a receive, or an idle gen_server */
    HIVE_STATUS_EXITING
};

#define HIVE_INFO_LINKS 16

struct hive_process_info {
    hive_pid pid;
    int      status;              /* enum hive_proc_status */
    uint32_t message_queue_len;   /* exact for the calling process; for another
                                     one, a lock-free snapshot of the messages it
                                     has already taken from its mailbox */
    uint32_t links;               /* number of links */
    hive_pid link[HIVE_INFO_LINKS]; /* the first min(links, HIVE_INFO_LINKS) */
    uint32_t monitors;            /* monitors it holds (hive_monitor) */
    uint32_t monitored_by;        /* monitors on it (hive_monitor by others) */
    bool     trap_exit;
    bool     gen_server;
    char     name[HIVE_NAME_MAX + 1]; /* registered name, "" if none */
    size_t   memory;              /* bytes: process record, gen_server context,
                                     link and monitor records, queued messages,
                                     and its stack while it holds one */
    uint64_t messages_dropped;    /* counted messages sent to it that never reached
                                     its queue or were dropped from it: rejected,
                                     dropped (newest or oldest) */
    uint32_t max_queue;           /* its mailbox limit, 0 = unbounded */
};

/* Process.info/1: 0, -EINVAL (NULL info, bad pid) or -ESRCH (not alive).
 * Works from any thread. Calls in flight (internal monitors) are not
 * counted as monitors. */
HIVE_API int hive_process_info(hive_pid pid, struct hive_process_info *info);

#ifdef __cplusplus
}
#endif
#endif /* HIVE_H */
