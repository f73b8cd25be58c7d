/*
 * Servers that hand work to tasks or other servers: deferred replies
 * (hive_reply from handle_info), tasks linked or only monitored, a
 * server's own hive_task_async tasks reporting to handle_info, many
 * servers computing in parallel.
 */
#include <stdio.h>

#include "gs_scenarios.h"

enum { Q_ASYNC = Q_LOCAL, Q_RESULT, Q_LINK, Q_FACT, Q_GREET, Q_SEND, Q_RECEIVED };

/* seeds/003, AsyncTaskReplier: handle_call starts a monitored task and does
 * not reply; the task's {ref, result} arrives in handle_info, which
 * demonitors with flush and replies with GenServer.reply. */
struct replier {
    hive_ref  task_ref;
    hive_pid  task;
    hive_from from;
    long      result;
    int       downs;
};

struct task_arg {
    hive_pid parent;
    hive_ref ref;
};

static struct task_arg the_task_arg;

static void async_task(void *arg)
{
    struct task_arg *t = arg;
    hive_msg_free(recv_tag(Q_GO, 5000));
    long result = 4242;
    hive_msg *m = hive_msg_alloc(sizeof result);
    m->tag = Q_RESULT;
    m->ref = t->ref;          /* {ref, result} */
    memcpy(m->data, &result, sizeof result);
    ck_assert_int_eq(hive_send_msg(t->parent, m), 0);
}

static void replier_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    struct replier *r = state;
    the_task_arg.parent = hive_self();
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r->task_ref };
    ck_assert_int_eq(hive_spawn_opt(async_task, &the_task_arg, &o, &r->task), 0);
    the_task_arg.ref = r->task_ref;
    hive_send(r->task, Q_GO, NULL, 0);
    r->from = from; /* {:noreply, {ref, from}} */
}

static void queue_len_fn(void *state, void *ctx)
{
    (void)state;
    struct hive_process_info pi;
    hive_process_info(hive_self(), &pi);
    *(uint32_t *)ctx = pi.message_queue_len;
}

static void replier_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct replier *r = state;
    if (msg->tag == Q_RESULT && hive_ref_eq(msg->ref, r->task_ref)) {
        hive_demonitor(r->task_ref, HIVE_FLUSH); /* no :DOWN after success */
        r->result = *(long *)msg->data;
        struct { hive_pid pid; long response; } rep = { r->from.pid, r->result };
        hive_reply(r->from, Q_RESULT, &rep, sizeof rep);
    } else if (msg->tag == HIVE_TAG_DOWN) {
        r->downs++;
    }
}

static void body_replier(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = arg_is_state_init, .handle_call = replier_call,
                                       .handle_info = replier_info };
    struct replier st = { 0 };
    hive_pid pid;
    hive_gs_opts o = { .name = "AsyncTaskReplier" };
    ck_assert_int_eq(hive_gs_start(&b, &st, &o, &pid), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_call_name("AsyncTaskReplier", Q_ASYNC, NULL, 0, &m, 5000), 0);
    struct { hive_pid pid; long response; } *rep = m->data;
    ck_assert_int_eq(rep->pid, hive_self());
    ck_assert_int_eq(rep->response, 4242);
    hive_msg_free(m);
    ck_assert(hive_is_alive(pid));
    /* after the task ended, the server's mailbox holds no :DOWN */
    hive_ref r = monitor(st.task);
    wait_down(r);
    uint32_t qlen = 99;
    ck_assert_int_eq(hive_gs_exec(pid, queue_len_fn, &qlen, 1000), 0);
    ck_assert_uint_eq(qlen, 0);
    ck_assert_int_eq(st.downs, 0);
}

START_TEST(async_task_result_is_replied_later_with_reply)
{
    run_hive(2, body_replier, NULL);
}
END_TEST

/* seeds/003, FirstAsyncTaskGsRunner: handle_call starts Task.async and
 * replies at once; the catch-all handle_info then receives two messages,
 * the task's {ref, result} and its {:DOWN, ref, :process, pid, :normal}. */
enum { N_REPLY = 1, N_DOWN, N_OTHER };

struct note {
    int         kind;
    bool        ref_is_the_tasks;
    hive_pid    from;
    long        result;
    hive_reason reason;
};

struct first_runner {
    hive_task task;      /* the state: the task's ref (and pid) */
    hive_pid  observer;
    bool      flush;     /* demonitor(ref, [:flush]) on the reply */
    int       infos;
};

static void *async_request(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)1729; /* the slides */
}

static void first_runner_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    struct first_runner *r = state;
    ck_assert_int_eq(hive_task_async(async_request, NULL, &r->task), 0);
    ck_assert_uint_eq(r->task.owner, hive_self());
    char reply[64]; /* "task with pid #{inspect(pid)} sent" */
    int n = snprintf(reply, sizeof reply, "task with pid %llu sent", (unsigned long long)r->task.pid);
    hive_reply(from, Q_ASYNC, reply, (size_t)n);
}

static void first_runner_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct first_runner *r = state;
    struct note n = { .kind = N_OTHER, .from = msg->from };
    void *result;
    r->infos++;
    if (hive_task_reply_of(msg, &r->task, &result)) {
        n.kind = N_REPLY;
        n.ref_is_the_tasks = hive_ref_eq(msg->ref, r->task.ref);
        n.result = (long)(intptr_t)result;
        if (r->flush)
            ck_assert_int_eq(hive_demonitor(r->task.ref, HIVE_FLUSH), 0);
    } else if (msg->tag == HIVE_TAG_DOWN) {
        const hive_down *d = msg->data;
        n.kind = N_DOWN;
        n.ref_is_the_tasks = hive_ref_eq(msg->ref, r->task.ref);
        n.from = d->pid;
        n.reason = d->reason;
    }
    hive_send(r->observer, Q_NOTE, &n, sizeof n); /* Logger.debug(inspect(msg)) */
}

static void exec_infos(void *state, void *ctx)
{
    struct first_runner *r = state;
    struct hive_process_info pi;
    hive_process_info(hive_self(), &pi);
    ((int *)ctx)[0] = r->infos;
    ((int *)ctx)[1] = (int)pi.message_queue_len;
}

static struct note recv_note(void)
{
    hive_msg *m = recv_tag(Q_NOTE, 5000);
    struct note n = *(struct note *)m->data;
    hive_msg_free(m);
    return n;
}

static void body_first_runner(void *arg)
{
    bool flush = arg != NULL;
    static const hive_gen_server b = { .init = arg_is_state_init,
                                       .handle_call = first_runner_call,
                                       .handle_info = first_runner_info };
    struct first_runner st = { .observer = hive_self(), .flush = flush };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, &st, NULL, &pid), 0); /* GenServer.start */
    for (int round = 0; round < 3; round++) {
        hive_msg *m;
        ck_assert_int_eq(hive_call(pid, Q_ASYNC, NULL, 0, &m, 5000), 0); /* run(pid) */
        char want[64];
        int len = snprintf(want, sizeof want, "task with pid %llu sent",
                           (unsigned long long)st.task.pid);
        ck_assert_int_eq(m->len, len);
        ck_assert(memcmp(m->data, want, m->len) == 0);
        hive_msg_free(m);
        hive_pid task = st.task.pid;
        /* first {ref, result} */
        struct note n = recv_note();
        ck_assert_int_eq(n.kind, N_REPLY);
        ck_assert(n.ref_is_the_tasks);
        ck_assert_uint_eq(n.from, task);
        ck_assert_int_eq(n.result, 1729);
        if (!flush) {
            /* then {:DOWN, ref, :process, pid, :normal} */
            n = recv_note();
            ck_assert_int_eq(n.kind, N_DOWN);
            ck_assert(n.ref_is_the_tasks);
            ck_assert_uint_eq(n.from, task);
            ck_assert_int_eq(n.reason, HIVE_NORMAL);
        } else {
            /* demonitor(ref, [:flush]): the task is gone and its DOWN with it */
            wait_down(monitor(task));
        }
        int info[2] = { -1, -1 };
        ck_assert_int_eq(hive_gs_exec(pid, exec_infos, info, 5000), 0);
        ck_assert_int_eq(info[0], (round + 1) * (flush ? 1 : 2)); /* nothing else came */
        ck_assert_int_eq(info[1], 0);
        ck_assert(!hive_is_alive(task)); /* it delivered and went: nothing lingers */
    }
    ck_assert(hive_is_alive(pid));
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_ref r = monitor(pid);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_SHUTDOWN, 1000), 0);
    ck_assert_int_eq(wait_down(r), HIVE_SHUTDOWN);
}

START_TEST(a_servers_async_task_reports_its_reply_then_its_down_to_handle_info)
{
    run_hive(2, body_first_runner, NULL);
}
END_TEST

START_TEST(a_server_that_demonitors_with_flush_on_the_reply_never_sees_the_down)
{
    run_hive(2, body_first_runner, (void *)1);
}
END_TEST

/* hive_task_await and friends inside a server keep the contract: the
 * result, a stopped task on a time-out, the crash's reason, and nothing
 * of an ended task left in the server's mailbox. */
static hive_pid g_exec_owner;

static void *slow_until_go(void *arg)
{
    hive_msg_free(recv_tag(Q_GO, HIVE_INFINITY));
    return arg;
}

static void *dies_with(void *arg)
{
    hive_exit((hive_reason)(intptr_t)arg);
}

static void *tell_then_return(void *arg)
{
    hive_send(g_exec_owner, Q_READY, NULL, 0);
    return arg;
}

static void exec_await_paths(void *state, void *ctx)
{
    (void)state;
    int *checks = ctx;
    void *r = NULL;
    hive_task t;
    struct hive_process_info pi;
    g_exec_owner = hive_self();
    /* await: the result */
    ck_assert_int_eq(hive_task_async(async_request, NULL, &t), 0);
    ck_assert_int_eq(hive_task_await(&t, 5000, &r), 0);
    ck_assert_int_eq((intptr_t)r, 1729);
    ck_assert_int_eq(hive_task_await(&t, 5000, &r), -ESRCH);
    /* yield times out and leaves it running; then await gets it */
    ck_assert_int_eq(hive_task_async(slow_until_go, (void *)(intptr_t)5, &t), 0);
    ck_assert_int_eq(hive_task_yield(&t, 10, &r), -ETIMEDOUT);
    ck_assert(hive_is_alive(t.pid));
    hive_send(t.pid, Q_GO, NULL, 0);
    ck_assert_int_eq(hive_task_await(&t, 5000, &r), 0);
    ck_assert_int_eq((intptr_t)r, 5);
    /* await times out: the task is stopped */
    ck_assert_int_eq(hive_task_async(slow_until_go, NULL, &t), 0);
    hive_pid slow = t.pid;
    ck_assert_int_eq(hive_task_await(&t, 10, &r), -ETIMEDOUT);
    ck_assert(!hive_is_alive(slow));
    /* shutdown before the result: stopped without one */
    ck_assert_int_eq(hive_task_async(slow_until_go, NULL, &t), 0);
    ck_assert_int_eq(hive_task_shutdown(&t, 1000, &r), -ESRCH);
    /* shutdown after the result: the result */
    ck_assert_int_eq(hive_task_async(tell_then_return, (void *)(intptr_t)9, &t), 0);
    hive_msg_free(recv_tag(Q_READY, 5000));
    hive_ref w = monitor(t.pid);
    wait_down(w); /* it replied and exited */
    r = NULL;
    ck_assert_int_eq(hive_task_shutdown(&t, 1000, &r), 0);
    ck_assert_int_eq((intptr_t)r, 9);
    /* a crash, trapped: -ECONNRESET with its reason; the EXIT is ours */
    bool was = hive_trap_exits(true);
    ck_assert_int_eq(hive_task_async(dies_with, (void *)(intptr_t)77, &t), 0);
    ck_assert_int_eq(hive_task_await(&t, 5000, &r), -ECONNRESET);
    ck_assert_int_eq(hive_call_reason(), 77);
    hive_msg *m = recv_tag(HIVE_TAG_EXIT, 5000);
    ck_assert_int_eq(((const hive_exit_signal *)m->data)->reason, 77);
    hive_msg_free(m);
    hive_trap_exits(was);
    /* many at once, awaited in order */
    static hive_task ts[100];
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(hive_task_async(async_request, NULL, &ts[i]), 0);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(hive_task_await(&ts[i], 5000, &r), 0);
        ck_assert_int_eq((intptr_t)r, 1729);
    }
    hive_process_info(hive_self(), &pi);
    checks[0] = (int)pi.message_queue_len;
    checks[1] = 1;
}

static void body_await_in_server(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { 0 };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, NULL, NULL, &pid), 0);
    int checks[2] = { -1, 0 };
    ck_assert_int_eq(hive_gs_exec(pid, exec_await_paths, checks, 10000), 0);
    ck_assert_int_eq(checks[1], 1);
    ck_assert_int_eq(checks[0], 0); /* no reply, DOWN or EXIT left behind */
    ck_assert(hive_is_alive(pid));
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
}

START_TEST(await_yield_and_shutdown_inside_a_server_leave_its_mailbox_empty)
{
    run_hive(2, body_await_in_server, NULL);
}
END_TEST

/* seeds/003, NoFailAsyncTaskRunner: a task the server started linked
 * (hive_task_async) dies with the server stopped with :kill; one it
 * started under the task supervisor (async_nolink) survives it. */
static void *forever_task(void *arg)
{
    (void)arg;
    hive_msg_free(recv_tag(Q_GO, HIVE_INFINITY));
    return NULL;
}

static void runner_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    hive_pid tsup = *(hive_pid *)state;
    hive_task t;
    if (req->tag == Q_LINK)
        ck_assert_int_eq(hive_task_async(forever_task, NULL, &t), 0);
    else
        ck_assert_int_eq(hive_task_sup_async_nolink(tsup, forever_task, NULL, &t), 0);
    hive_reply(from, req->tag, &t.pid, sizeof t.pid); /* {:reply, pid, ref} */
}

static void body_runner(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = arg_is_state_init, .handle_call = runner_call };
    hive_pid tsup;
    hive_sup_opts so;
    hive_sup_opts_default(&so);
    so.name = "MyTaskSupervisor";
    ck_assert_int_eq(hive_task_sup_start(&so, &tsup), 0);
    for (int linked = 1; linked >= 0; linked--) {
        hive_pid pid;
        hive_gs_opts o = { .name = "NoFailAsyncTaskRunner" };
        ck_assert_int_eq(hive_gs_start(&b, &tsup, &o, &pid), 0);
        hive_msg *m;
        ck_assert_int_eq(hive_call(pid, linked ? Q_LINK : Q_ASYNC, NULL, 0, &m, 1000), 0);
        hive_pid task = *(hive_pid *)m->data;
        hive_msg_free(m);
        hive_ref rt = monitor(task);
        ck_assert_int_eq(hive_gs_stop(hive_whereis("NoFailAsyncTaskRunner"), HIVE_KILL, 1000), 0);
        if (linked) {
            ck_assert_int_eq(wait_down(rt), HIVE_KILLED); /* Is task alive? false */
        } else {
            ck_assert(hive_is_alive(task));                /* Is task alive? true */
            hive_send(task, Q_GO, NULL, 0);
            ck_assert_int_eq(wait_down(rt), HIVE_NORMAL);  /* and it got to its end */
        }
    }
    ck_assert_int_eq(hive_gs_stop(tsup, HIVE_SHUTDOWN, 1000), 0);
}

START_TEST(linked_task_dies_with_its_server_unlinked_survives)
{
    run_hive(2, body_runner, NULL);
}
END_TEST

/* seeds/003, AsyncTaskRunner: a failing task that is only monitored (under
 * the task supervisor) reaches handle_info as a :DOWN with no reply before
 * it, the server lives on; a failing Task.async, linked, takes the server
 * down (a supervisor would restart it). */
struct taskrunner {
    hive_pid observer;
    hive_pid tsup;
    int      replies;
};

static void *failing_task(void *arg)
{
    (void)arg;
    hive_kill(hive_self(), HIVE_KILL); /* Process.exit(self(), :kill) */
    return NULL;                       /* AsyncTask.request(), never reached */
}

static void taskrunner_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    struct taskrunner *tr = state;
    hive_task t;
    if (req->tag == Q_LINK)
        ck_assert_int_eq(hive_task_async(failing_task, NULL, &t), 0);
    else
        ck_assert_int_eq(hive_task_sup_async_nolink(tr->tsup, failing_task, NULL, &t), 0);
    bool alive = true;
    hive_reply(from, req->tag, &alive, sizeof alive); /* {:reply, Process.alive?(self()), ref} */
}

static void taskrunner_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct taskrunner *t = state;
    if (hive_task_reply_of(msg, NULL, NULL)) {
        t->replies++;
    } else if (msg->tag == HIVE_TAG_DOWN) {
        hive_reason why = ((const hive_down *)msg->data)->reason;
        hive_send(t->observer, Q_NOTE, &why, sizeof why);
    }
}

static void exec_replies(void *state, void *ctx)
{
    *(int *)ctx = ((struct taskrunner *)state)->replies;
}

static void body_failing_tasks(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = arg_is_state_init, .handle_call = taskrunner_call,
                                       .handle_info = taskrunner_info };
    struct taskrunner st = { .observer = hive_self() };
    ck_assert_int_eq(hive_task_sup_start(NULL, &st.tsup), 0);
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, &st, NULL, &pid), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, Q_ASYNC, NULL, 0, &m, 1000), 0);
    hive_msg_free(m);
    m = recv_tag(Q_NOTE, 5000);
    ck_assert_int_eq(*(hive_reason *)m->data, HIVE_KILLED);
    hive_msg_free(m);
    int replies = -1;
    ck_assert_int_eq(hive_gs_exec(pid, exec_replies, &replies, 1000), 0);
    ck_assert_int_eq(replies, 0); /* a task that died sent no reply */
    ck_assert(hive_is_alive(pid)); /* same pid, not restarted */
    hive_ref r = monitor(pid);
    ck_assert_int_eq(hive_call(pid, Q_LINK, NULL, 0, &m, 1000), 0);
    hive_msg_free(m);
    ck_assert_int_eq(wait_down(r), HIVE_KILLED); /* the linked failure took it down */
    ck_assert_int_eq(hive_gs_stop(st.tsup, HIVE_SHUTDOWN, 1000), 0);
}

START_TEST(failing_monitored_task_is_a_down_failing_linked_task_kills_the_server)
{
    run_hive(2, body_failing_tasks, NULL);
}
END_TEST

/* seeds/003, FactorialGs: n! mod p by 1000 servers, one chunk of 10 each. */
#define FACT_P 1000000007L

struct chunk {
    long lo, hi;
};

static void fact_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    struct chunk *c = state;
    long v = 1;
    for (long i = c->lo; i <= c->hi; i++)
        v = v * i % FACT_P;
    hive_reply(from, Q_FACT, &v, sizeof v);
}

static void body_factorial(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = arg_is_state_init, .handle_call = fact_call };
    enum { N = 10000, CHUNK = 10 };
    static struct chunk chunks[N / CHUNK];
    long single = 1;
    for (long i = 1; i <= N; i++)
        single = single * i % FACT_P;
    static hive_pid pids[N / CHUNK];
    static hive_ref reqs[N / CHUNK];
    for (int k = 0; k < N / CHUNK; k++) {
        chunks[k] = (struct chunk){ k * CHUNK + 1, (k + 1) * CHUNK };
        ck_assert_int_eq(hive_gs_start(&b, &chunks[k], NULL, &pids[k]), 0);
        ck_assert_int_eq(hive_send_request(pids[k], Q_FACT, NULL, 0, &reqs[k]), 0);
    }
    long product = 1;
    for (int k = 0; k < N / CHUNK; k++) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive_response(reqs[k], &m, 5000), 0);
        product = product * reply_long(m) % FACT_P;
        ck_assert_int_eq(hive_gs_stop(pids[k], HIVE_NORMAL, 1000), 0);
    }
    ck_assert_int_eq(product, single);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(factorial_by_a_thousand_servers_matches_one_process)
{
    run_hive(4, body_factorial, NULL);
}
END_TEST

/* seeds/004, Coordinator and WebSocket: an asynchronous service made to
 * look synchronous with a deferred reply. */
struct websocket {
    hive_pid caller;
};

static int ws_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct websocket *w = arg;
    *state = w;
    return 0;
}

static void ws_cast(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct websocket *w = state;
    char response[128];
    int n = snprintf(response, sizeof response, "%.*s to you too!", (int)msg->len,
                     (const char *)msg->data);
    hive_send(w->caller, Q_RECEIVED, response, (size_t)n); /* {:message_received, response} */
}

static const hive_gen_server WEBSOCKET = { .init = ws_init, .handle_cast = ws_cast };

struct coordinator {
    struct websocket ws_state;
    hive_pid  async_pid;
    hive_from caller;
};

static int coord_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct coordinator *c = arg;
    c->ws_state.caller = hive_self();
    hive_gs_opts o = { .flags = HIVE_LINK };
    int rc = hive_gs_start(&WEBSOCKET, &c->ws_state, &o, &c->async_pid);
    *state = c;
    return rc;
}

static void coord_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    struct coordinator *c = state;
    ck_assert_int_eq(hive_cast(c->async_pid, Q_SEND, req->data, req->len), 0);
    c->caller = from; /* {:noreply, Map.put(state, :caller, from)} */
}

static void coord_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct coordinator *c = state;
    if (msg->tag == Q_RECEIVED)
        hive_reply(c->caller, Q_GREET, msg->data, msg->len);
}

static void body_deferred_greet(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = coord_init, .handle_call = coord_call,
                                       .handle_info = coord_info };
    struct coordinator c = { 0 };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, &c, NULL, &pid), 0);
    for (int i = 0; i < 3; i++) {
        const char hello[] = "Hello world";
        hive_msg *m;
        ck_assert_int_eq(hive_call(pid, Q_GREET, hello, sizeof hello - 1, &m, 1000), 0);
        ck_assert_int_eq(m->len, strlen("Hello world to you too!"));
        ck_assert(memcmp(m->data, "Hello world to you too!", m->len) == 0);
        hive_msg_free(m);
    }
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_ref r = monitor(c.async_pid);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_SHUTDOWN, 1000), 0);
    ck_assert_int_eq(wait_down(r), HIVE_SHUTDOWN); /* the linked WebSocket went with it */
}

START_TEST(async_service_looks_synchronous_through_a_deferred_reply)
{
    run_hive(2, body_deferred_greet, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("gs_tasks");
    TCase *tc = tcase_create("gs_tasks");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, async_task_result_is_replied_later_with_reply);
    tcase_add_test(tc, a_servers_async_task_reports_its_reply_then_its_down_to_handle_info);
    tcase_add_test(tc, a_server_that_demonitors_with_flush_on_the_reply_never_sees_the_down);
    tcase_add_test(tc, await_yield_and_shutdown_inside_a_server_leave_its_mailbox_empty);
    tcase_add_test(tc, linked_task_dies_with_its_server_unlinked_survives);
    tcase_add_test(tc, failing_monitored_task_is_a_down_failing_linked_task_kills_the_server);
    tcase_add_test(tc, factorial_by_a_thousand_servers_matches_one_process);
    tcase_add_test(tc, async_service_looks_synchronous_through_a_deferred_reply);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
