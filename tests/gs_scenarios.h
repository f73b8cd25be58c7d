/*
 * Helpers shared by the gen_server scenario suites: test_call_*.c and
 * test_gs_*.c.
 *
 * Their scenarios come from the GenServer write-ups in shared/seeds: the
 * comment that opens each group of tests names the write-up (seeds/000 ..
 * seeds/004) and, where it has one, the module the scenario is modelled on
 * (Foo, Timesout, FirstGs, ...).
 */
#ifndef HIVE_TEST_GS_SCENARIOS_H
#define HIVE_TEST_GS_SCENARIOS_H

#include "harness.h"

/* Q_QUERY and Q_STATE are Foo's request and reply; Q_READY, Q_GO and
 * Q_NOTE are the hand-shakes between a test and its own processes. Each
 * suite numbers its other tags from Q_LOCAL. */
enum { Q_QUERY = 1, Q_STATE, Q_READY, Q_GO, Q_NOTE, Q_LOCAL };

static inline uint32_t my_queue_len(void)
{
    struct hive_process_info pi;
    ck_assert_int_eq(hive_process_info(hive_self(), &pi), 0);
    return pi.message_queue_len;
}

static inline hive_ref monitor(hive_pid pid)
{
    hive_ref r;
    ck_assert_int_eq(hive_monitor(pid, &r), 0);
    return r;
}

/* The long a reply carries; frees the reply. */
static inline long reply_long(hive_msg *m)
{
    long v = *(long *)m->data;
    hive_msg_free(m);
    return v;
}

static inline long call_long(hive_pid pid, uint32_t tag, const void *req, size_t len)
{
    hive_msg *m;
    int rc = hive_call(pid, tag, req, len, &m, 5000);
    ck_assert_msg(rc == 0, "call %u: %s", tag, hive_strerror(rc));
    return reply_long(m);
}

static inline void get_long_fn(void *state, void *ctx)
{
    *(long *)ctx = *(long *)state;
}

/* :sys.get_state for servers whose state starts with a long */
static inline long state_long(hive_pid pid)
{
    long v = -1;
    ck_assert_int_eq(hive_gs_exec(pid, get_long_fn, &v, 5000), 0);
    return v;
}

/* init(arg) -> {:ok, arg} */
static inline int arg_is_state_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    *state = arg;
    return 0;
}

/* 000's Foo: every call is {:reply, state, state}, the state a long. */
static inline void foo_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    hive_reply(from, Q_STATE, state, sizeof(long));
}

static const hive_gen_server FOO = { .handle_call = foo_call };

#endif
