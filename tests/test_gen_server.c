/*
 * gen_server: start, call, cast, reply, stop, continue, defaults, parent
 * exits, send_request/receive_response, exec, process_info.
 *
 * Every test synchronises on messages, monitors and replies; the only
 * sleeps are slow handlers whose slowness is the behaviour under test.
 */
#include <pthread.h>

#include "harness.h"
#include "runtime/proc/proc.h"

enum {
    T_INC = 1,        /* call/cast: count++, reply count */
    T_GET,            /* call: reply count */
    T_SLOW,           /* call: wait for a T_GO message, count++, reply count */
    T_EARLY,          /* call: reply count, then wait for T_GO, count++ */
    T_STOP,           /* call/cast: stop_self(payload reason), no reply */
    T_DEFER,          /* call: keep from, no reply; T_READY to the observer */
    T_ANSWER,         /* cast: reply to the kept from with count */
    T_TWICE,          /* call: reply twice */
    T_EXIT,           /* call: hive_exit(payload reason) */
    T_BLOCK,          /* call: wait for a T_GO message, then reply */
    T_GO,
    T_CONT,           /* call/cast: request a continue, reply */
    T_MUTUAL,         /* call: tell payload[1] we are in, wait for T_GO, then
                         hive_call(payload[0], T_GET) with 30 ms; reply its rc */
    T_TERMINATED,     /* to the observer: terminate ran, payload reason */
    T_INFO,           /* to the observer: handle_info saw payload tag */
    T_CONTINUED,      /* to the observer: handle_continue ran */
    T_CASTED,         /* to the observer: handle_cast ran, payload count */
    T_READY,
};

struct srv {
    long        count;
    long        casts;
    hive_pid    observer;   /* gets T_TERMINATED / T_INFO / ... */
    bool        trap;       /* init: trap exits */
    bool        cont_in_init;
    int         init_rc;    /* init returns this */
    hive_reason init_exit;  /* init exits with this when non-zero */
    hive_from   kept;
    uint32_t    order[8];   /* tags in the order the server saw them */
    int         norder;
};

static void note(struct srv *s, uint32_t tag)
{
    if (s->norder < 8)
        s->order[s->norder++] = tag;
}

static int srv_init(hive_gs *gs, void *arg, void **state)
{
    struct srv *s = arg;
    if (s->init_exit)
        hive_exit(s->init_exit);
    if (s->trap)
        hive_trap_exits(true);
    if (s->cont_in_init) {
        /* a message is queued before the continue: the continue still
         * runs first */
        uint32_t t = T_INFO;
        hive_send(hive_self(), T_INFO, &t, sizeof t);
        hive_gs_continue(gs, T_CONT, NULL, 0);
    }
    *state = s;
    return s->init_rc;
}

static void reply_count(hive_from from, struct srv *s)
{
    hive_reply(from, T_INC, &s->count, sizeof s->count);
}

static bool match_go(const hive_msg *m, void *ctx)
{
    (void)ctx;
    return m->tag == T_GO;
}

static void srv_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    struct srv *s = state;
    note(s, req->tag);
    switch (req->tag) {
    case T_INC:
        s->count++;
        reply_count(from, s);
        break;
    case T_GET:
        reply_count(from, s);
        break;
    /* The slow requests wait for the test's T_GO instead of sleeping, so
     * that "the call timed out first" does not rest on timer margins. */
    case T_SLOW: {
        hive_msg *m;
        ck_assert_int_eq(hive_receive_if(match_go, NULL, &m, 10000), 0);
        hive_msg_free(m);
        s->count++;
        reply_count(from, s);
        break;
    }
    case T_EARLY: {
        reply_count(from, s);
        hive_msg *m;
        ck_assert_int_eq(hive_receive_if(match_go, NULL, &m, 10000), 0);
        hive_msg_free(m);
        s->count++;
        break;
    }
    case T_STOP:
        hive_gs_stop_self(gs, *(hive_reason *)req->data);
        break;
    case T_DEFER:
        s->kept = from;
        if (s->observer) {
            hive_pid me = hive_self();
            hive_send(s->observer, T_READY, &me, sizeof me);
        }
        break;
    case T_TWICE:
        reply_count(from, s);
        s->count++;
        reply_count(from, s);
        break;
    case T_EXIT:
        hive_exit(*(hive_reason *)req->data);
    case T_BLOCK: {
        hive_msg *m;
        if (s->observer) {
            hive_pid me = hive_self();
            hive_send(s->observer, T_READY, &me, sizeof me);
        }
        ck_assert_int_eq(hive_receive_if(match_go, NULL, &m, 10000), 0);
        hive_msg_free(m);
        reply_count(from, s);
        break;
    }
    case T_CONT:
        hive_gs_continue(gs, T_CONT, NULL, 0);
        reply_count(from, s);
        break;
    case T_MUTUAL: {
        const hive_pid *p = req->data;
        hive_pid me = hive_self();
        hive_send(p[1], T_READY, &me, sizeof me);
        hive_msg *m;
        ck_assert_int_eq(hive_receive_if(match_go, NULL, &m, 10000), 0);
        hive_msg_free(m);
        int rc = hive_call(p[0], T_GET, NULL, 0, &m, 30);
        if (rc == 0)
            hive_msg_free(m);
        hive_reply(from, T_MUTUAL, &rc, sizeof rc);
        break;
    }
    default:
        ck_abort_msg("unexpected call %u", req->tag);
    }
}

static void srv_cast(hive_gs *gs, void *state, const hive_msg *msg)
{
    struct srv *s = state;
    note(s, msg->tag);
    s->casts++;
    switch (msg->tag) {
    case T_INC:
        s->count++;
        break;
    case T_STOP:
        hive_gs_stop_self(gs, *(hive_reason *)msg->data);
        break;
    case T_ANSWER:
        reply_count(s->kept, s);
        break;
    case T_CONT:
        hive_gs_continue(gs, T_CONT, NULL, 0);
        break;
    default:
        break;
    }
    if (s->observer)
        hive_send(s->observer, T_CASTED, &s->casts, sizeof s->casts);
}

static void srv_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct srv *s = state;
    note(s, msg->tag);
    if (s->observer)
        hive_send(s->observer, T_INFO, &msg->tag, sizeof msg->tag);
}

static void srv_continue(hive_gs *gs, void *state, const hive_msg *cont)
{
    (void)gs;
    struct srv *s = state;
    note(s, T_CONTINUED);
    ck_assert_uint_eq(cont->tag, T_CONT);
    if (s->observer)
        hive_send(s->observer, T_CONTINUED, NULL, 0);
}

static void srv_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    struct srv *s = state;
    if (s->observer)
        hive_send(s->observer, T_TERMINATED, &reason, sizeof reason);
}

static const hive_gen_server SRV = {
    .init = srv_init,
    .handle_call = srv_call,
    .handle_cast = srv_cast,
    .handle_info = srv_info,
    .handle_continue = srv_continue,
    .terminate = srv_terminate,
};

static hive_pid start(struct srv *s)
{
    hive_pid pid;
    int rc = hive_gs_start(&SRV, s, NULL, &pid);
    ck_assert_msg(rc == 0, "start: %s", hive_strerror(rc));
    return pid;
}

static long call_long(hive_pid server, uint32_t tag, const void *req, size_t len, int64_t t)
{
    hive_msg *m;
    int rc = hive_call(server, tag, req, len, &m, t);
    ck_assert_msg(rc == 0, "call %u: %s", tag, hive_strerror(rc));
    long v = *(long *)m->data;
    hive_msg_free(m);
    return v;
}

static uint32_t my_queue_len(void)
{
    struct hive_process_info pi;
    ck_assert_int_eq(hive_process_info(hive_self(), &pi), 0);
    return pi.message_queue_len;
}

static uint64_t late_dropped(void)
{
    hive_sched_stats t;
    hive_stats(NULL, 0, &t);
    return t.late_replies_dropped;
}

static hive_ref monitor(hive_pid pid)
{
    hive_ref r;
    ck_assert_int_eq(hive_monitor(pid, &r), 0);
    return r;
}

static hive_reason wait_terminated(void)
{
    hive_msg *m = recv_tag(T_TERMINATED, 5000);
    hive_reason r = *(hive_reason *)m->data;
    hive_msg_free(m);
    return r;
}

/* ------------------------------------------------------------------ */
/* Start                                                               */
/* ------------------------------------------------------------------ */

static int init_marks(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    *(int *)arg = 42;
    *state = arg;
    return 0;
}

static void body_start_returns_after_init(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = init_marks };
    int seen = 0;
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, &seen, NULL, &pid), 0);
    ck_assert_int_eq(seen, 42); /* init ran before start returned */
    ck_assert(hive_is_alive(pid));
    void *st;
    ck_assert_int_eq(hive_gs_get_state(pid, &st, 1000), 0);
    ck_assert_ptr_eq(st, &seen);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
}

START_TEST(start_returns_after_init_ran)
{
    run_hive(2, body_start_returns_after_init, NULL);
}
END_TEST

static void body_start_name_taken(void *arg)
{
    (void)arg;
    struct srv a = { 0 }, b = { .count = 100 };
    hive_gs_opts o = { .name = "counter" };
    hive_pid p1, p2 = HIVE_NOPID;
    ck_assert_int_eq(hive_gs_start(&SRV, &a, &o, &p1), 0);
    ck_assert_int_eq(hive_whereis("counter"), p1);
    ck_assert_int_eq(hive_gs_start(&SRV, &b, &o, &p2), -EEXIST);
    ck_assert_int_eq(p2, p1); /* the running one */
    ck_assert_int_eq(call_long(p1, T_GET, NULL, 0, 1000), 0); /* its state, not b's */
    hive_msg *m;
    ck_assert_int_eq(hive_call_name("counter", T_INC, NULL, 0, &m, 1000), 0);
    ck_assert_int_eq(*(long *)m->data, 1);
    hive_msg_free(m);
    ck_assert_int_eq(hive_gs_stop(p1, HIVE_NORMAL, 1000), 0);
    /* the name is free again: a restart under it works */
    ck_assert_int_eq(hive_gs_start(&SRV, &b, &o, &p2), 0);
    ck_assert_int_ne(p2, p1);
    ck_assert_int_eq(hive_gs_stop(p2, HIVE_NORMAL, 1000), 0);
}

START_TEST(start_with_a_taken_name_is_eexist_with_the_running_pid)
{
    run_hive(2, body_start_name_taken, NULL);
}
END_TEST

static void body_start_ignore(void *arg)
{
    (void)arg;
    struct srv s = { .init_rc = HIVE_IGNORE };
    hive_gs_opts o = { .name = "ignored", .flags = HIVE_LINK };
    hive_trap_exits(true);
    hive_pid pid = 7;
    ck_assert_int_eq(hive_gs_start(&SRV, &s, &o, &pid), HIVE_IGNORE);
    ck_assert_int_eq(pid, 7); /* untouched */
    ck_assert_int_eq(hive_whereis("ignored"), HIVE_NOPID);
    /* init failing with an error: the same cleanup */
    s.init_rc = -ENOTSUP;
    ck_assert_int_eq(hive_gs_start(&SRV, &s, &o, &pid), -ENOTSUP);
    ck_assert_int_eq(hive_whereis("ignored"), HIVE_NOPID);
    /* no EXIT reached us although we were linked and trap exits */
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 20), -ETIMEDOUT);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(start_ignore_or_error_leaves_no_name_and_no_exit)
{
    run_hive(2, body_start_ignore, NULL);
}
END_TEST

static void body_start_init_crash(void *arg)
{
    (void)arg;
    struct srv s = { .init_exit = 42 };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&SRV, &s, NULL, &pid), -ECONNRESET);
    ck_assert_int_eq(hive_call_reason(), 42);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(start_with_an_init_that_exits_returns_econnreset)
{
    run_hive(2, body_start_init_crash, NULL);
}
END_TEST

static void body_start_bad_args(void *arg)
{
    (void)arg;
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(NULL, NULL, NULL, &pid), -EINVAL);
    hive_gs_opts o = { .flags = 0x80 };
    ck_assert_int_eq(hive_gs_start(&SRV, NULL, &o, &pid), -EINVAL);
    hive_gs_opts o2 = { .name = "" };
    ck_assert_int_eq(hive_gs_start(&SRV, NULL, &o2, &pid), -EINVAL);
    char longname[HIVE_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    hive_gs_opts o3 = { .name = longname };
    ck_assert_int_eq(hive_gs_start(&SRV, NULL, &o3, &pid), -EINVAL);
}

START_TEST(start_rejects_bad_arguments)
{
    run_hive(1, body_start_bad_args, NULL);
}
END_TEST

static void body_start_link(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_gs_opts o = { .flags = HIVE_LINK };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&SRV, &s, &o, &pid), 0);
    struct hive_process_info pi;
    ck_assert_int_eq(hive_process_info(pid, &pi), 0);
    ck_assert_uint_eq(pi.links, 1);
    ck_assert_int_eq(pi.link[0], hive_self());
    ck_assert_int_eq(hive_unlink(pid), 0);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_SHUTDOWN, 1000), 0);
}

START_TEST(start_with_link_links_the_starter)
{
    run_hive(2, body_start_link, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Calls                                                               */
/* ------------------------------------------------------------------ */

static void body_call_basic(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    for (long i = 1; i <= 100; i++)
        ck_assert_int_eq(call_long(pid, T_INC, NULL, 0, HIVE_INFINITY), i);
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, T_GET, NULL, 0, &m, 1000), 0);
    ck_assert_uint_eq(m->tag, T_INC);
    ck_assert_int_eq(m->from, pid);
    hive_msg_free(m);
    ck_assert_uint_eq(my_queue_len(), 0);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
}

START_TEST(call_returns_the_reply)
{
    run_hive(2, body_call_basic, NULL);
}
END_TEST

static void body_call_timeout(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    uint64_t dropped0 = late_dropped();
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, T_SLOW, NULL, 0, &m, 5), -ETIMEDOUT);
    hive_send(pid, T_GO, NULL, 0);
    /* the server was not harmed: it finishes the request (count 1), and
     * this call is answered after it */
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 1);
    /* the late reply was freed at delivery, never queued */
    ck_assert_uint_eq(late_dropped(), dropped0 + 1);
    ck_assert_uint_eq(my_queue_len(), 0);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
}

START_TEST(call_timeout_leaves_the_server_working_and_drops_the_late_reply)
{
    run_hive(2, body_call_timeout, NULL);
}
END_TEST

static void body_call_timeout_zero(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    uint64_t dropped0 = late_dropped();
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, T_INC, NULL, 0, &m, 0), -ETIMEDOUT);
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 1);
    ck_assert_uint_eq(late_dropped(), dropped0 + 1);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(call_with_zero_timeout_times_out_at_once)
{
    run_hive(2, body_call_timeout_zero, NULL);
}
END_TEST

static void dead_proc(void *arg)
{
    (void)arg;
}

static void body_call_errors(void *arg)
{
    (void)arg;
    hive_msg *m;
    hive_pid dead;
    hive_ref r;
    ck_assert_int_eq(hive_spawn_opt(dead_proc, NULL, &(hive_spawn_opts){ .flags = HIVE_MONITOR, .monitor = &r }, &dead), 0);
    wait_down(r);
    ck_assert_int_eq(hive_call(dead, T_GET, NULL, 0, &m, 1000), -ESRCH);
    ck_assert_int_eq(hive_call(HIVE_NOPID, T_GET, NULL, 0, &m, 1000), -EINVAL);
    ck_assert_int_eq(hive_call((hive_pid)0x1234, T_GET, NULL, 0, &m, 1000), -EINVAL);
    ck_assert_int_eq(hive_call(hive_self(), T_GET, NULL, 0, &m, 1000), -EDEADLK);
    ck_assert_int_eq(hive_call(dead, T_GET, NULL, 0, NULL, 1000), -EINVAL);
    ck_assert_int_eq(hive_call(dead, T_GET, NULL, 4, &m, 1000), -EINVAL);
    ck_assert_int_eq(hive_call(dead, HIVE_TAG_DOWN, NULL, 0, &m, 1000), -EINVAL);
    ck_assert_int_eq(hive_call(dead, T_GET, NULL, 0, &m, -7), -EINVAL);
    ck_assert_int_eq(hive_call_name(NULL, T_GET, NULL, 0, &m, 1000), -EINVAL);
    ck_assert_int_eq(hive_call_name("nobody", T_GET, NULL, 0, &m, 1000), -ESRCH);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(call_errors_esrch_einval_edeadlk)
{
    run_hive(2, body_call_errors, NULL);
}
END_TEST

struct foreign {
    hive_pid server;
    int call_rc, cast_rc, exec_rc, stop_rc;
};

static void noop_fn(void *state, void *ctx)
{
    (void)state;
    (void)ctx;
}

static void *foreign_thread(void *arg)
{
    struct foreign *f = arg;
    hive_msg *m;
    f->call_rc = hive_call(f->server, T_GET, NULL, 0, &m, 1000);
    f->exec_rc = hive_gs_exec(f->server, noop_fn, NULL, 1000);
    f->stop_rc = hive_gs_stop(f->server, HIVE_NORMAL, 1000);
    f->cast_rc = hive_cast(f->server, T_INC, NULL, 0);
    return NULL;
}

static void body_call_foreign(void *arg)
{
    (void)arg;
    struct srv s = { .observer = hive_self() };
    struct foreign f = { .server = start(&s) };
    pthread_t th;
    pthread_create(&th, NULL, foreign_thread, &f);
    pthread_join(th, NULL);
    ck_assert_int_eq(f.call_rc, -EPERM);
    ck_assert_int_eq(f.exec_rc, -EPERM);
    ck_assert_int_eq(f.stop_rc, -EPERM);
    ck_assert_int_eq(f.cast_rc, 0);        /* casts work from any thread */
    hive_msg *m = recv_tag(T_CASTED, 5000);
    hive_msg_free(m);
    ck_assert_int_eq(call_long(f.server, T_GET, NULL, 0, 1000), 1);
}

START_TEST(blocking_calls_from_a_foreign_thread_are_eperm_casts_work)
{
    run_hive(2, body_call_foreign, NULL);
}
END_TEST

static void body_call_server_stops(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    hive_msg *m;
    hive_reason r = 77;
    ck_assert_int_eq(hive_call(pid, T_STOP, &r, sizeof r, &m, 1000), -ECONNRESET);
    ck_assert_int_eq(hive_call_reason(), 77);
    /* HIVE_NORMAL too: the call still ends in -ECONNRESET */
    pid = start(&s);
    r = HIVE_NORMAL;
    ck_assert_int_eq(hive_call(pid, T_STOP, &r, sizeof r, &m, 1000), -ECONNRESET);
    ck_assert_int_eq(hive_call_reason(), HIVE_NORMAL);
    /* a callback that exits on its own */
    pid = start(&s);
    r = 99;
    ck_assert_int_eq(hive_call(pid, T_EXIT, &r, sizeof r, &m, HIVE_INFINITY), -ECONNRESET);
    ck_assert_int_eq(hive_call_reason(), 99);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(call_to_a_server_that_exits_before_replying_is_econnreset_with_reason)
{
    run_hive(2, body_call_server_stops, NULL);
}
END_TEST

static void kill_when_ready(void *arg)
{
    (void)arg;
    hive_msg *m = recv_tag(T_READY, 5000); /* the server is inside T_BLOCK */
    hive_kill(*(hive_pid *)m->data, HIVE_KILL);
    hive_msg_free(m);
}

static void body_call_killed(void *arg)
{
    (void)arg;
    hive_pid kp;
    hive_spawn(kill_when_ready, NULL, &kp);
    struct srv s = { .observer = kp };
    hive_pid pid = start(&s);
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, T_BLOCK, NULL, 0, &m, HIVE_INFINITY), -ECONNRESET);
    ck_assert_int_eq(hive_call_reason(), HIVE_KILLED);
    ck_assert_uint_eq(my_queue_len(), 0);
}

/* Records of monitors on a process's monitored_by list (a call's monitor
 * has one there while the call is in flight). */
static unsigned watchers_of(hive_pid pid)
{
    struct proc *t;
    ck_assert_int_eq(proc_resolve(pid, &t), 0);
    unsigned n = 0;
    proc_lock(t);
    for (struct mon *m = t->monitored_by; m; m = m->next)
        n++;
    proc_unlock(t);
    return n;
}

static void blocked_caller(void *arg)
{
    hive_pid server = *(hive_pid *)arg;
    hive_msg *m;
    hive_call(server, T_BLOCK, NULL, 0, &m, HIVE_INFINITY);
    ck_abort_msg("the call returned although its caller was killed");
}

/* A caller killed in the middle of a call takes its monitor off the
 * server: nothing is left on the server's list, and the server, once it
 * answers, sends nothing anywhere. A call that ends normally leaves no
 * record either. */
static void body_caller_killed(void *arg)
{
    (void)arg;
    struct srv s = { .observer = hive_self() };
    hive_pid pid = start(&s);
    ck_assert_uint_eq(watchers_of(pid), 0);
    ck_assert_int_eq(call_long(pid, T_INC, NULL, 0, 1000), 1);
    ck_assert_uint_eq(watchers_of(pid), 0);
    hive_pid c;
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
    ck_assert_int_eq(hive_spawn_opt(blocked_caller, &pid, &o, &c), 0);
    hive_msg_free(recv_tag(T_READY, 5000)); /* the server is inside T_BLOCK */
    ck_assert_uint_eq(watchers_of(pid), 1);  /* the call's monitor */
    hive_kill(c, HIVE_KILL);
    ck_assert_int_eq(wait_down(r), HIVE_KILLED);
    ck_assert_uint_eq(watchers_of(pid), 0);
    hive_send(pid, T_GO, NULL, 0);            /* its late reply goes nowhere */
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 1);
    ck_assert_uint_eq(watchers_of(pid), 0);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(a_caller_killed_during_a_call_leaves_no_monitor_on_the_server)
{
    run_hive(2, body_caller_killed, NULL);
}
END_TEST

START_TEST(call_pending_when_the_server_is_killed_is_econnreset_killed)
{
    run_hive(2, body_call_killed, NULL);
}
END_TEST

static void body_call_o1(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    enum { CALLS = 2000, QUEUED = 100000 };
    struct proc *me = proc_self();
    /* baseline: an empty mailbox */
    uint64_t e0 = me->examined;
    for (int i = 0; i < CALLS; i++)
        call_long(pid, T_INC, NULL, 0, HIVE_INFINITY);
    uint64_t base = me->examined - e0;

    for (int i = 0; i < QUEUED; i++)
        ck_assert_int_eq(hive_send(hive_self(), 1000, &i, sizeof i), 0);
    call_long(pid, T_INC, NULL, 0, HIVE_INFINITY); /* moves them into the queue once */
    e0 = me->examined;
    for (int i = 0; i < CALLS; i++)
        call_long(pid, T_INC, NULL, 0, HIVE_INFINITY);
    uint64_t with = me->examined - e0;
    /* Each call's wait looks at what arrived after its mark, whatever is
     * queued before it: the same work as with an empty mailbox. A scan of
     * the old messages would look at CALLS * QUEUED (2e8). */
    ck_assert_msg(with <= base + CALLS, "%d calls looked at %llu messages with %d queued, %llu "
                  "without", CALLS, (unsigned long long)with, QUEUED, (unsigned long long)base);
    ck_assert_uint_ge(with, CALLS); /* each reply was looked at */
    /* the unrelated messages are still there, in order */
    ck_assert_uint_eq(my_queue_len(), QUEUED);
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 0), 0);
    ck_assert_int_eq(*(int *)m->data, 0);
    hive_msg_free(m);
}

START_TEST(call_wait_is_o1_with_100k_unrelated_messages_queued)
{
    run_hive(2, body_call_o1, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

static void body_reply_early(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    /* the call returns while the server is still at work on it (it waits
     * for our T_GO, which we send only after the call returned) */
    ck_assert_int_eq(call_long(pid, T_EARLY, NULL, 0, 5000), 0);
    hive_send(pid, T_GO, NULL, 0);
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 1); /* the work went on */
}

START_TEST(reply_early_then_keep_working)
{
    run_hive(2, body_reply_early, NULL);
}
END_TEST

static void deferred_answerer(void *arg)
{
    hive_pid server = *(hive_pid *)arg;
    /* cast only once the server holds the from: a cast that overtook the
     * call would answer nothing and leave the call to time out */
    hive_msg *m = recv_tag(T_READY, 5000);
    hive_msg_free(m);
    hive_cast(server, T_ANSWER, NULL, 0);
}

static void body_reply_deferred(void *arg)
{
    (void)arg;
    struct srv s = { .count = 5 };
    hive_pid pid = start(&s);
    hive_pid helper;
    hive_spawn(deferred_answerer, &pid, &helper);
    /* read by the server only after it takes the call sent below */
    s.observer = helper;
    /* T_DEFER keeps from; the helper's cast makes the server answer */
    ck_assert_int_eq(call_long(pid, T_DEFER, NULL, 0, 5000), 5);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(reply_deferred_from_a_later_callback)
{
    run_hive(2, body_reply_deferred, NULL);
}
END_TEST

struct reply_from_other {
    hive_from from;
    hive_pid  waiter;
};

static void reply_from_other_proc(void *arg)
{
    struct reply_from_other *r = arg;
    hive_msg *m = recv_tag(T_GO, 5000);
    hive_msg_free(m);
    long v = 314;
    ck_assert_int_eq(hive_reply(r->from, T_INC, &v, sizeof v), 0);
    ck_assert_int_eq(hive_reply(r->from, T_INC, &v, sizeof v), 0); /* second: dropped */
}

static void defer_to_proc_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    struct reply_from_other *r = state;
    r->from = from;
    hive_pid p;
    hive_spawn(reply_from_other_proc, r, &p);
    hive_send(p, T_GO, NULL, 0);
}

static void body_reply_other_process(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .handle_call = defer_to_proc_call };
    struct reply_from_other r = { 0 };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, &r, NULL, &pid), 0);
    uint64_t d0 = late_dropped();
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 5000), 314);
    /* the second reply: dropped at delivery or purged; never left */
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 20), -ETIMEDOUT);
    ck_assert_uint_eq(my_queue_len(), 0);
    (void)d0;
}

START_TEST(reply_from_another_process_reaches_the_caller_once)
{
    run_hive(2, body_reply_other_process, NULL);
}
END_TEST

static void body_reply_twice(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    for (int i = 0; i < 200; i++) {
        long c = s.count;
        ck_assert_int_eq(call_long(pid, T_TWICE, NULL, 0, 1000), c); /* the first one */
        ck_assert_uint_eq(my_queue_len(), 0);
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 10), -ETIMEDOUT);
}

START_TEST(reply_twice_only_the_first_reaches_the_caller)
{
    run_hive(2, body_reply_twice, NULL);
}
END_TEST

static void body_reply_bad(void *arg)
{
    (void)arg;
    hive_from f = { .pid = HIVE_NOPID };
    ck_assert_int_eq(hive_reply(f, 1, NULL, 0), -EINVAL);
    f.pid = 0x77;
    ck_assert_int_eq(hive_reply(f, 1, NULL, 0), -EINVAL);
    f.pid = hive_self();
    ck_assert_int_eq(hive_reply(f, 1, NULL, 3), -EINVAL);
    /* a reply nobody waits for: accepted, and dropped at delivery */
    f.ref = hive_make_ref();
    ck_assert_int_eq(hive_reply(f, 1, NULL, 0), 0);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(reply_rejects_bad_arguments_and_drops_unexpected_replies)
{
    run_hive(1, body_reply_bad, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Casts                                                               */
/* ------------------------------------------------------------------ */

static void body_cast(void *arg)
{
    (void)arg;
    struct srv s = { .observer = hive_self() };
    hive_gs_opts o = { .name = "caster" };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&SRV, &s, &o, &pid), 0);
    ck_assert_int_eq(hive_cast(pid, T_INC, NULL, 0), 0);
    ck_assert_int_eq(hive_cast_name("caster", T_INC, NULL, 0), 0);
    for (int i = 0; i < 2; i++)
        hive_msg_free(recv_tag(T_CASTED, 5000));
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 2);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
    (void)wait_terminated();
    /* dead server, unregistered name: accepted and dropped */
    ck_assert_int_eq(hive_cast(pid, T_INC, NULL, 0), 0);
    ck_assert_int_eq(hive_cast_name("caster", T_INC, NULL, 0), 0);
    ck_assert_int_eq(hive_cast_name("never-there", T_INC, NULL, 0), 0);
    /* bad arguments */
    ck_assert_int_eq(hive_cast(HIVE_NOPID, T_INC, NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_cast(0x55, T_INC, NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_cast(pid, T_INC, NULL, 8), -EINVAL);
    ck_assert_int_eq(hive_cast_name(NULL, T_INC, NULL, 0), -EINVAL);
}

START_TEST(cast_is_handled_and_never_fails_for_a_dead_server)
{
    run_hive(2, body_cast, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Stopping                                                            */
/* ------------------------------------------------------------------ */

static void body_stop(void *arg)
{
    (void)arg;
    struct srv s = { .observer = hive_self() };
    hive_pid pid = start(&s);
    hive_ref r = monitor(pid);
    ck_assert_int_eq(hive_gs_stop(pid, 1234, 1000), 0);
    /* terminate ran (its message is already here) and the process is gone */
    ck_assert(!hive_is_alive(pid));
    hive_msg *m;
    ck_assert_int_eq(hive_receive_if(match_tag, &(uint32_t){ T_TERMINATED }, &m, 0), 0);
    ck_assert_int_eq(*(hive_reason *)m->data, 1234);
    hive_msg_free(m);
    ck_assert_int_eq(wait_down(r), 1234);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), -ESRCH);
    ck_assert_int_eq(hive_gs_stop(HIVE_NOPID, HIVE_NORMAL, 1000), -EINVAL);
    ck_assert_int_eq(hive_gs_stop(hive_self(), HIVE_NORMAL, 1000), -EDEADLK);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(stop_returns_once_terminate_ran_and_the_process_is_gone)
{
    run_hive(2, body_stop, NULL);
}
END_TEST

static void body_stop_timeout(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    hive_send_request(pid, T_BLOCK, NULL, 0, &(hive_ref){ 0, 0 });
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 10), -ETIMEDOUT);
    ck_assert(hive_is_alive(pid));
    hive_ref r = monitor(pid);
    hive_send(pid, T_GO, NULL, 0); /* unblock: the queued stop then runs */
    ck_assert_int_eq(wait_down(r), HIVE_NORMAL);
}

START_TEST(stop_times_out_while_a_callback_runs)
{
    run_hive(2, body_stop_timeout, NULL);
}
END_TEST

static void body_stop_self(void *arg)
{
    (void)arg;
    struct srv s = { .observer = hive_self() };
    hive_pid pid = start(&s);
    hive_ref r = monitor(pid);
    hive_reason why = 55;
    /* a blocking call holds the server while the stop and one more cast
     * are queued behind it: the cast after the stop is never handled */
    hive_ref req;
    ck_assert_int_eq(hive_send_request(pid, T_BLOCK, NULL, 0, &req), 0);
    hive_cast(pid, T_STOP, &why, sizeof why);
    hive_cast(pid, T_INC, NULL, 0);
    hive_send(pid, T_GO, NULL, 0);
    hive_msg *m;
    ck_assert_int_eq(hive_receive_response(req, &m, 5000), 0);
    hive_msg_free(m);
    ck_assert_int_eq(wait_terminated(), 55);
    ck_assert_int_eq(wait_down(r), 55);
    ck_assert_int_eq(s.casts, 1); /* T_STOP only */
    ck_assert_int_eq(s.count, 0);
    ck_assert_int_eq(s.order[0], T_BLOCK);
    ck_assert_int_eq(s.order[1], T_STOP);
    ck_assert_int_eq(s.norder, 2);
}

START_TEST(stop_self_stops_after_the_callback_and_skips_queued_messages)
{
    run_hive(2, body_stop_self, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Continue                                                            */
/* ------------------------------------------------------------------ */

static void body_continue(void *arg)
{
    (void)arg;
    struct srv s = { .observer = hive_self(), .cont_in_init = true };
    hive_pid pid = start(&s);
    hive_msg_free(recv_tag(T_CONTINUED, 5000));
    hive_msg_free(recv_tag(T_INFO, 5000));
    /* the message init queued to itself came after the continue */
    ck_assert_int_eq(s.order[0], T_CONTINUED);
    ck_assert_int_eq(s.order[1], T_INFO);
    /* continues from a call and from a cast run before the next message */
    ck_assert_int_eq(call_long(pid, T_CONT, NULL, 0, 1000), 0);
    hive_cast(pid, T_CONT, NULL, 0);
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 0);
    ck_assert_int_eq(s.order[2], T_CONT);
    ck_assert_int_eq(s.order[3], T_CONTINUED);
    ck_assert_int_eq(s.order[4], T_CONT);
    ck_assert_int_eq(s.order[5], T_CONTINUED);
    ck_assert_int_eq(s.order[6], T_GET);
}

START_TEST(continue_runs_before_any_other_message)
{
    run_hive(2, body_continue, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* hive_gs_set_state                                                   */
/* ------------------------------------------------------------------ */

/* A server whose state is a heap cell; SWAP (from a cast, a call, a
 * continue or an info) puts a new cell with the given value in its place
 * and frees the old one, GET answers the current cell's value, and
 * terminate reports the value and address of the cell it was given. */
enum { SS_SWAP = 1, SS_GET, SS_SWAP_CONT, SS_TERM = 900, SS_GS };

struct ss_cell {
    int64_t  v;
    hive_pid observer;
};

static struct ss_cell *ss_cell(int64_t v, hive_pid observer)
{
    struct ss_cell *c = malloc(sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->v = v;
    c->observer = observer;
    return c;
}

static void ss_swap(hive_gs *gs, void *state, const hive_msg *m)
{
    struct ss_cell *old = state;
    int64_t v;
    ck_assert_uint_eq(m->len, sizeof v);
    memcpy(&v, m->data, sizeof v);
    hive_gs_set_state(gs, ss_cell(v, old->observer));
    free(old);
}

static int ss_init(hive_gs *gs, void *arg, void **state)
{
    hive_pid observer = *(hive_pid *)arg;
    uintptr_t g = (uintptr_t)gs;
    hive_send(observer, SS_GS, &g, sizeof g);
    *state = ss_cell(1, observer);
    return 0;
}

static void ss_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    struct ss_cell *c = state;
    if (req->tag == SS_SWAP) {
        ss_swap(gs, state, req);
        hive_reply(from, 0, NULL, 0);
    } else if (req->tag == SS_SWAP_CONT) {
        /* the new state is set by the continue, which runs before the
         * next message: the reply goes first, from here */
        hive_reply(from, 0, NULL, 0);
        hive_gs_continue(gs, SS_SWAP, req->data, req->len);
    } else {
        hive_reply(from, 0, &c->v, sizeof c->v);
    }
}

static void ss_cast(hive_gs *gs, void *state, const hive_msg *m)
{
    ss_swap(gs, state, m);
}

static void ss_info(hive_gs *gs, void *state, const hive_msg *m)
{
    ss_swap(gs, state, m);
}

static void ss_continue(hive_gs *gs, void *state, const hive_msg *m)
{
    ss_swap(gs, state, m);
}

static void ss_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    (void)reason;
    struct ss_cell *c = state;
    struct { int64_t v; uintptr_t addr; } t = { c->v, (uintptr_t)c };
    hive_send(c->observer, SS_TERM, &t, sizeof t);
    free(c);
}

static const hive_gen_server SS = {
    .init = ss_init,
    .handle_call = ss_call,
    .handle_cast = ss_cast,
    .handle_info = ss_info,
    .handle_continue = ss_continue,
    .terminate = ss_terminate,
};

static int64_t ss_get(hive_pid pid)
{
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, SS_GET, NULL, 0, &m, 5000), 0);
    int64_t v;
    ck_assert_uint_eq(m->len, sizeof v);
    memcpy(&v, m->data, sizeof v);
    hive_msg_free(m);
    return v;
}

static void body_set_state(void *arg)
{
    (void)arg;
    hive_pid self = hive_self(), pid;
    ck_assert_int_eq(hive_gs_start(&SS, &self, NULL, &pid), 0);
    ck_assert_int_eq(ss_get(pid), 1);
    int64_t v = 2;
    hive_cast(pid, SS_SWAP, &v, sizeof v);
    ck_assert_int_eq(ss_get(pid), 2);
    v = 3;
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, SS_SWAP, &v, sizeof v, &m, 5000), 0);
    hive_msg_free(m);
    ck_assert_int_eq(ss_get(pid), 3);
    v = 4;
    ck_assert_int_eq(hive_send(pid, SS_SWAP, &v, sizeof v), 0);
    ck_assert_int_eq(ss_get(pid), 4);
    v = 5;
    ck_assert_int_eq(hive_call(pid, SS_SWAP_CONT, &v, sizeof v, &m, 5000), 0);
    hive_msg_free(m);
    ck_assert_int_eq(ss_get(pid), 5);
    /* from outside the server's callbacks it is ignored */
    hive_msg *g = recv_tag(SS_GS, 5000);
    uintptr_t gs;
    memcpy(&gs, g->data, sizeof gs);
    hive_msg_free(g);
    struct ss_cell bogus = { 99, self };
    hive_gs_set_state((hive_gs *)gs, &bogus);
    ck_assert_int_eq(ss_get(pid), 5);
    /* hive_gs_get_state and terminate see the cell set last */
    void *st;
    ck_assert_int_eq(hive_gs_get_state(pid, &st, 5000), 0);
    ck_assert_int_eq(((struct ss_cell *)st)->v, 5);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 5000), 0);
    hive_msg *t = recv_tag(SS_TERM, 5000);
    struct { int64_t v; uintptr_t addr; } got;
    ck_assert_uint_eq(t->len, sizeof got);
    memcpy(&got, t->data, sizeof got);
    hive_msg_free(t);
    ck_assert_int_eq(got.v, 5);
    ck_assert(got.addr == (uintptr_t)st);
}

START_TEST(set_state_from_a_callback_is_the_state_later_callbacks_get_and_ignored_elsewhere)
{
    run_hive(2, body_set_state, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Defaults                                                            */
/* ------------------------------------------------------------------ */

static void body_defaults(void *arg)
{
    (void)arg;
    static const hive_gen_server none = { 0 };
    int x = 3;
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&none, &x, NULL, &pid), 0);
    void *st;
    ck_assert_int_eq(hive_gs_get_state(pid, &st, 1000), 0);
    ck_assert_ptr_eq(st, &x); /* no init: the state is the argument */
    /* no handle_info: messages are dropped, the server lives */
    ck_assert_int_eq(hive_send(pid, 9, NULL, 0), 0);
    ck_assert_int_eq(hive_gs_get_state(pid, &st, 1000), 0);
    ck_assert(hive_is_alive(pid));
    /* no handle_call: OTP's crash, the caller sees HIVE_ERROR */
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, 1, NULL, 0, &m, 1000), -ECONNRESET);
    ck_assert_int_eq(hive_call_reason(), HIVE_ERROR);
    /* no handle_cast: the same crash */
    ck_assert_int_eq(hive_gs_start(&none, &x, NULL, &pid), 0);
    hive_ref r = monitor(pid);
    hive_cast(pid, 1, NULL, 0);
    ck_assert_int_eq(wait_down(r), HIVE_ERROR);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(null_callbacks_get_otp_defaults)
{
    run_hive(2, body_defaults, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Parent exits, kill                                                  */
/* ------------------------------------------------------------------ */

struct parent_case {
    struct srv srv;
    hive_pid   test;
    hive_pid   server;
    hive_reason exit_with;
};

static void parent_proc(void *arg)
{
    struct parent_case *c = arg;
    hive_gs_opts o = { .flags = HIVE_LINK };
    ck_assert_int_eq(hive_gs_start(&SRV, &c->srv, &o, &c->server), 0);
    hive_send(c->test, T_READY, &c->server, sizeof c->server);
    hive_msg_free(recv_tag(T_GO, 5000));
    hive_exit(c->exit_with);
}

static hive_reason parent_case_run(struct parent_case *c, bool *terminated)
{
    hive_pid parent;
    c->test = hive_self();
    c->srv.observer = hive_self();
    hive_spawn(parent_proc, c, &parent);
    hive_msg_free(recv_tag(T_READY, 5000));
    hive_ref r = monitor(c->server);
    hive_send(parent, T_GO, NULL, 0);
    hive_reason why = wait_down(r);
    hive_msg *m;
    *terminated = hive_receive_if(match_tag, &(uint32_t){ T_TERMINATED }, &m, 0) == 0;
    if (*terminated) {
        ck_assert_int_eq(*(hive_reason *)m->data, why);
        hive_msg_free(m);
    }
    return why;
}

static void body_parent_exit_trap(void *arg)
{
    (void)arg;
    struct parent_case c = { .srv = { .trap = true }, .exit_with = 5 };
    bool term;
    ck_assert_int_eq(parent_case_run(&c, &term), 5);
    ck_assert(term);
    /* OTP: even a normal exit of the parent stops a trapping server */
    struct parent_case c2 = { .srv = { .trap = true }, .exit_with = HIVE_NORMAL };
    ck_assert_int_eq(parent_case_run(&c2, &term), HIVE_NORMAL);
    ck_assert(term);
}

START_TEST(parent_exit_runs_terminate_when_the_server_traps_exits)
{
    run_hive(2, body_parent_exit_trap, NULL);
}
END_TEST

static void body_parent_exit_notrap(void *arg)
{
    (void)arg;
    struct parent_case c = { .srv = { .trap = false }, .exit_with = 5 };
    bool term;
    ck_assert_int_eq(parent_case_run(&c, &term), 5);
    ck_assert(!term); /* just died */
}

START_TEST(parent_exit_kills_a_server_that_does_not_trap_without_terminate)
{
    run_hive(2, body_parent_exit_notrap, NULL);
}
END_TEST

static void body_kill_no_terminate(void *arg)
{
    (void)arg;
    struct srv s = { .observer = hive_self(), .trap = true };
    hive_pid pid = start(&s);
    hive_ref r = monitor(pid);
    /* a trapped exit from someone who is not the parent is just info */
    ck_assert_int_eq(hive_kill(pid, HIVE_SHUTDOWN), 0);
    hive_msg *m = recv_tag(T_INFO, 5000);
    ck_assert_uint_eq(*(uint32_t *)m->data, HIVE_TAG_EXIT);
    hive_msg_free(m);
    ck_assert(hive_is_alive(pid));
    ck_assert_int_eq(hive_kill(pid, HIVE_KILL), 0);
    ck_assert_int_eq(wait_down(r), HIVE_KILLED);
    ck_assert_int_eq(hive_receive_if(match_tag, &(uint32_t){ T_TERMINATED }, &m, 20), -ETIMEDOUT);
}

START_TEST(kill_never_runs_terminate)
{
    run_hive(2, body_kill_no_terminate, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* send_request / receive_response                                     */
/* ------------------------------------------------------------------ */

static void body_requests(void *arg)
{
    (void)arg;
    enum { NS = 3, NR = 10 };
    struct srv s[NS] = { { .count = 0 }, { .count = 100 }, { .count = 200 } };
    hive_pid pids[NS];
    for (int i = 0; i < NS; i++)
        pids[i] = start(&s[i]);
    hive_ref req[NS][NR];
    for (int k = 0; k < NR; k++)
        for (int i = 0; i < NS; i++)
            ck_assert_int_eq(hive_send_request(pids[i], T_INC, NULL, 0, &req[i][k]), 0);
    /* collect in reverse order: each response matches its request */
    for (int k = NR - 1; k >= 0; k--)
        for (int i = NS - 1; i >= 0; i--) {
            hive_msg *m;
            ck_assert_int_eq(hive_receive_response(req[i][k], &m, 5000), 0);
            ck_assert_int_eq(*(long *)m->data, i * 100 + k + 1);
            hive_msg_free(m);
            /* answered: no longer a request in flight */
            ck_assert_int_eq(hive_receive_response(req[i][k], &m, 0), -EINVAL);
        }
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_receive_response(req[0][0], NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_send_request(pids[0], T_INC, NULL, 0, NULL), -EINVAL);
    (void)m;
}

START_TEST(send_request_allows_many_calls_in_flight)
{
    run_hive(2, body_requests, NULL);
}
END_TEST

static void body_request_timeout(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_pid pid = start(&s);
    hive_ref req;
    ck_assert_int_eq(hive_send_request(pid, T_SLOW, NULL, 0, &req), 0);
    uint64_t d0 = late_dropped();
    hive_msg *m;
    ck_assert_int_eq(hive_receive_response(req, &m, 5), -ETIMEDOUT);
    hive_send(pid, T_GO, NULL, 0);
    /* abandoned, as OTP's receive_response does */
    ck_assert_int_eq(hive_receive_response(req, &m, 0), -EINVAL);
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 1);
    ck_assert_uint_eq(late_dropped(), d0 + 1);
    ck_assert_uint_eq(my_queue_len(), 0);
    /* a dead server: -ESRCH at once */
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
    ck_assert_int_eq(hive_send_request(pid, T_GET, NULL, 0, &req), -ESRCH);
    /* a server that dies with the request pending */
    pid = start(&s);
    hive_reason why = 8;
    ck_assert_int_eq(hive_send_request(pid, T_STOP, &why, sizeof why, &req), 0);
    ck_assert_int_eq(hive_receive_response(req, &m, 5000), -ECONNRESET);
    ck_assert_int_eq(hive_call_reason(), 8);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(receive_response_timeout_abandons_the_request)
{
    run_hive(2, body_request_timeout, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Two servers calling each other                                      */
/* ------------------------------------------------------------------ */

struct mutual {
    hive_pid server;
    hive_pid req[2];   /* the other server, the test */
};

static void mutual_caller(void *arg)
{
    struct mutual *c = arg;
    hive_msg *m;
    ck_assert_int_eq(hive_call(c->server, T_MUTUAL, c->req, sizeof c->req, &m, 5000), 0);
    int inner = *(int *)m->data;
    hive_msg_free(m);
    hive_send(c->req[1], T_CASTED, &inner, sizeof inner);
}

static void body_mutual_calls(void *arg)
{
    (void)arg;
    struct srv a = { 0 }, b = { 0 };
    hive_pid pa = start(&a), pb = start(&b);
    struct mutual ca = { pa, { pb, hive_self() } }, cb = { pb, { pa, hive_self() } };
    hive_pid c1, c2;
    hive_spawn(mutual_caller, &ca, &c1);
    hive_spawn(mutual_caller, &cb, &c2);
    /* both servers are inside their T_MUTUAL callback: then each calls
     * the other, and each call waits behind the other's callback */
    for (int i = 0; i < 2; i++)
        hive_msg_free(recv_tag(T_READY, 5000));
    hive_send(pa, T_GO, NULL, 0);
    hive_send(pb, T_GO, NULL, 0);
    /* The deadlock lasts until the first 30 ms timeout; that server then
     * answers the other's call, which may still be waiting. */
    int timeouts = 0;
    for (int i = 0; i < 2; i++) {
        hive_msg *m = recv_tag(T_CASTED, 5000);
        int rc = *(int *)m->data;
        ck_assert_msg(rc == 0 || rc == -ETIMEDOUT, "inner call: %s", hive_strerror(rc));
        timeouts += rc == -ETIMEDOUT;
        hive_msg_free(m);
    }
    ck_assert_int_ge(timeouts, 1);
    /* both recovered: each answered the other's late call, then ours */
    ck_assert_int_eq(call_long(pa, T_GET, NULL, 0, 1000), 0);
    ck_assert_int_eq(call_long(pb, T_GET, NULL, 0, 1000), 0);
    ck_assert_int_eq(a.norder, 3); /* T_MUTUAL, the other's T_GET, ours */
    ck_assert_int_eq(b.norder, 3);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(servers_calling_each_other_recover_after_the_timeout)
{
    run_hive(2, body_mutual_calls, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* exec / get_state                                                    */
/* ------------------------------------------------------------------ */

struct exec_probe {
    long     count;
    hive_pid ran_in;
    uint32_t queue_len;
    int      runs;
};

static void probe_fn(void *state, void *ctx)
{
    struct srv *s = state;
    struct exec_probe *p = ctx;
    p->count = s->count;
    p->ran_in = hive_self();
    struct hive_process_info pi;
    hive_process_info(hive_self(), &pi);
    p->queue_len = pi.message_queue_len;
    p->runs++;
    s->count += 10; /* :sys.replace_state */
}

static void body_exec(void *arg)
{
    (void)arg;
    struct srv s = { .count = 7 };
    hive_pid pid = start(&s);
    struct exec_probe p = { 0 };
    ck_assert_int_eq(hive_gs_exec(pid, probe_fn, &p, 1000), 0);
    ck_assert_int_eq(p.count, 7);
    ck_assert_int_eq(p.ran_in, pid); /* inside the server */
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 17);
    /* a busy server: the exec times out and fn never runs */
    hive_ref req;
    hive_send_request(pid, T_BLOCK, NULL, 0, &req);
    struct exec_probe q = { 0 };
    ck_assert_int_eq(hive_gs_exec(pid, probe_fn, &q, 10), -ETIMEDOUT);
    hive_send(pid, T_GO, NULL, 0);
    hive_msg *m;
    ck_assert_int_eq(hive_receive_response(req, &m, 5000), 0);
    hive_msg_free(m);
    ck_assert_int_eq(call_long(pid, T_GET, NULL, 0, 1000), 17); /* fn did not run */
    ck_assert_int_eq(q.runs, 0);
    /* errors */
    ck_assert_int_eq(hive_gs_exec(pid, NULL, NULL, 1000), -EINVAL);
    ck_assert_int_eq(hive_gs_exec(hive_self(), probe_fn, &q, 1000), -EDEADLK);
    ck_assert_int_eq(hive_gs_get_state(pid, NULL, 1000), -EINVAL);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
    ck_assert_int_eq(hive_gs_exec(pid, probe_fn, &q, 1000), -ESRCH);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(exec_runs_a_function_on_the_state_inside_the_server)
{
    run_hive(2, body_exec, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* process_info                                                        */
/* ------------------------------------------------------------------ */

static void linked_waiter(void *arg)
{
    (void)arg;
    hive_msg_free(recv_tag(T_GO, HIVE_INFINITY));
}

/* Waits (yielding) until pid is parked in a receive or idle. */
static void wait_waiting(hive_pid pid)
{
    struct hive_process_info pi;
    for (long i = 0; i < 10000000; i++) {
        ck_assert_int_eq(hive_process_info(pid, &pi), 0);
        if (pi.status == HIVE_STATUS_WAITING)
            return;
        hive_yield();
    }
    ck_abort_msg("process never waited");
}

static void body_process_info(void *arg)
{
    (void)arg;
    struct srv s = { 0 };
    hive_gs_opts o = { .name = "inspected" };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&SRV, &s, &o, &pid), 0);
    struct hive_process_info pi;
    /* an idle server: waiting, no stack, small */
    wait_waiting(pid);
    ck_assert_int_eq(hive_process_info(pid, &pi), 0);
    ck_assert_int_eq(pi.pid, pid);
    ck_assert_int_eq(pi.status, HIVE_STATUS_WAITING);
    ck_assert_str_eq(pi.name, "inspected");
    ck_assert(pi.gen_server);
    ck_assert_uint_eq(pi.links, 0);
    ck_assert_uint_eq(pi.message_queue_len, 0);
    ck_assert_msg(pi.memory <= 1024, "idle server: %zu bytes", pi.memory);

    /* links, monitors both ways, our own queue */
    hive_pid w;
    hive_spawn_opt(linked_waiter, NULL, &(hive_spawn_opts){ .flags = HIVE_LINK }, &w);
    hive_ref r1 = monitor(pid), r2 = monitor(w);
    for (int i = 0; i < 5; i++)
        hive_send(hive_self(), 100, NULL, 0);
    ck_assert_int_eq(hive_process_info(hive_self(), &pi), 0);
    ck_assert_int_eq(pi.status, HIVE_STATUS_RUNNING);
    ck_assert_uint_eq(pi.message_queue_len, 5);
    ck_assert_uint_eq(pi.links, 1);
    ck_assert_int_eq(pi.link[0], w);
    ck_assert_uint_eq(pi.monitors, 2);
    ck_assert_str_eq(pi.name, "");
    ck_assert(!pi.gen_server);
    ck_assert_int_eq(hive_process_info(pid, &pi), 0);
    ck_assert_uint_eq(pi.monitored_by, 1);
    wait_waiting(w);
    ck_assert_int_eq(hive_process_info(w, &pi), 0);
    ck_assert_uint_eq(pi.links, 1);
    ck_assert_uint_eq(pi.monitored_by, 1);
    ck_assert_int_eq(pi.status, HIVE_STATUS_WAITING);
    ck_assert_uint_eq(pi.memory >= 256 * 1024, 1); /* it holds its stack */
    hive_demonitor(r1, HIVE_FLUSH);
    hive_demonitor(r2, HIVE_FLUSH);
    /* a call in flight is not a monitor the user made */
    hive_ref req;
    hive_send_request(pid, T_GET, NULL, 0, &req);
    ck_assert_int_eq(hive_process_info(hive_self(), &pi), 0);
    ck_assert_uint_eq(pi.monitors, 0);
    hive_msg *m;
    ck_assert_int_eq(hive_receive_response(req, &m, 1000), 0);
    hive_msg_free(m);
    /* errors */
    ck_assert_int_eq(hive_process_info(pid, NULL), -EINVAL);
    ck_assert_int_eq(hive_process_info(HIVE_NOPID, &pi), -EINVAL);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
    ck_assert_int_eq(hive_process_info(pid, &pi), -ESRCH);
    hive_unlink(w);
    hive_send(w, T_GO, NULL, 0);
}

START_TEST(process_info_reports_status_queue_links_monitors_name_memory)
{
    run_hive(2, body_process_info, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("gen_server");
    TCase *tc = tcase_create("gen_server");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, start_returns_after_init_ran);
    tcase_add_test(tc, start_with_a_taken_name_is_eexist_with_the_running_pid);
    tcase_add_test(tc, start_ignore_or_error_leaves_no_name_and_no_exit);
    tcase_add_test(tc, start_with_an_init_that_exits_returns_econnreset);
    tcase_add_test(tc, start_rejects_bad_arguments);
    tcase_add_test(tc, start_with_link_links_the_starter);
    tcase_add_test(tc, call_returns_the_reply);
    tcase_add_test(tc, call_timeout_leaves_the_server_working_and_drops_the_late_reply);
    tcase_add_test(tc, call_with_zero_timeout_times_out_at_once);
    tcase_add_test(tc, call_errors_esrch_einval_edeadlk);
    tcase_add_test(tc, blocking_calls_from_a_foreign_thread_are_eperm_casts_work);
    tcase_add_test(tc, call_to_a_server_that_exits_before_replying_is_econnreset_with_reason);
    tcase_add_test(tc, call_pending_when_the_server_is_killed_is_econnreset_killed);
    tcase_add_test(tc, a_caller_killed_during_a_call_leaves_no_monitor_on_the_server);
    tcase_add_test(tc, call_wait_is_o1_with_100k_unrelated_messages_queued);
    tcase_add_test(tc, reply_early_then_keep_working);
    tcase_add_test(tc, reply_deferred_from_a_later_callback);
    tcase_add_test(tc, reply_from_another_process_reaches_the_caller_once);
    tcase_add_test(tc, reply_twice_only_the_first_reaches_the_caller);
    tcase_add_test(tc, reply_rejects_bad_arguments_and_drops_unexpected_replies);
    tcase_add_test(tc, cast_is_handled_and_never_fails_for_a_dead_server);
    tcase_add_test(tc, stop_returns_once_terminate_ran_and_the_process_is_gone);
    tcase_add_test(tc, stop_times_out_while_a_callback_runs);
    tcase_add_test(tc, stop_self_stops_after_the_callback_and_skips_queued_messages);
    tcase_add_test(tc, continue_runs_before_any_other_message);
    tcase_add_test(tc, set_state_from_a_callback_is_the_state_later_callbacks_get_and_ignored_elsewhere);
    tcase_add_test(tc, null_callbacks_get_otp_defaults);
    tcase_add_test(tc, parent_exit_runs_terminate_when_the_server_traps_exits);
    tcase_add_test(tc, parent_exit_kills_a_server_that_does_not_trap_without_terminate);
    tcase_add_test(tc, kill_never_runs_terminate);
    tcase_add_test(tc, send_request_allows_many_calls_in_flight);
    tcase_add_test(tc, receive_response_timeout_abandons_the_request);
    tcase_add_test(tc, servers_calling_each_other_recover_after_the_timeout);
    tcase_add_test(tc, exec_runs_a_function_on_the_state_inside_the_server);
    tcase_add_test(tc, process_info_reports_status_queue_links_monitors_name_memory);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
