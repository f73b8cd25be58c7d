/* The lower rooms on their own: timer wheel, run queue, mailbox. */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "runtime/ds/mailbox.h"
#include "runtime/ds/runq.h"
#include "runtime/ds/wheel.h"

struct fired {
    uint64_t ticks[4096];
    int n;
    uint64_t now_at_fire[4096];
    struct wheel *w;
};

static void on_fire(struct wentry *e, void *ctx)
{
    struct fired *f = ctx;
    f->ticks[f->n] = e->tick;
    f->now_at_fire[f->n] = f->w->now;
    f->n++;
}

START_TEST(wheel_fires_each_entry_once_never_early)
{
    static struct wheel w;
    static struct wentry e[2000];
    static struct fired f;
    memset(&f, 0, sizeof f);
    f.w = &w;
    wheel_init(&w, 1000);
    uint64_t seed = 12345;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        /* deltas from 0 ms to ~3 days, to cross every level */
        uint64_t d = (seed >> 20) % (i % 4 == 0 ? 300000000ull : i % 4 == 1 ? 70000 : 100);
        e[i].tick = 1000 + d;
        e[i].level = -2;
        wheel_insert(&w, &e[i]);
    }
    uint64_t next;
    int fired_before = 0;
    while (wheel_next(&w, &next)) {
        ck_assert_uint_ge(next, w.now);
        /* advance in uneven steps */
        wheel_advance(&w, next + (fired_before % 3), on_fire, &f);
        fired_before = f.n;
    }
    ck_assert_int_eq(f.n, 2000);
    for (int i = 0; i < f.n; i++)
        ck_assert_uint_le(f.ticks[i], f.now_at_fire[i]); /* never early */
    ck_assert_uint_eq(w.count, 0);
}
END_TEST

START_TEST(wheel_remove_is_o1_and_exact)
{
    static struct wheel w;
    static struct wentry e[100];
    static struct fired f;
    memset(&f, 0, sizeof f);
    f.w = &w;
    wheel_init(&w, 0);
    for (int i = 0; i < 100; i++) {
        e[i].tick = 10 + i * 37;
        e[i].level = -2;
        wheel_insert(&w, &e[i]);
    }
    for (int i = 0; i < 100; i += 2)
        wheel_remove(&w, &e[i]);
    ck_assert_uint_eq(w.count, 50);
    wheel_advance(&w, 1000000, on_fire, &f);
    ck_assert_int_eq(f.n, 50);
    for (int i = 0; i < f.n; i++)
        ck_assert_uint_eq((f.ticks[i] - 10) / 37 % 2, 1);
}
END_TEST

START_TEST(wheel_due_entry_fires_on_next_advance)
{
    static struct wheel w;
    struct wentry e = { .tick = 5, .level = -2 };
    static struct fired f;
    memset(&f, 0, sizeof f);
    f.w = &w;
    wheel_init(&w, 100);
    wheel_insert(&w, &e);
    uint64_t next;
    ck_assert(wheel_next(&w, &next));
    ck_assert_uint_eq(next, 100);
    wheel_advance(&w, 100, on_fire, &f);
    ck_assert_int_eq(f.n, 1);
}
END_TEST

START_TEST(runq_fifo_and_bounded)
{
    static struct runq q;
    runq_init(&q);
    for (uintptr_t i = 1; i <= RUNQ_SIZE; i++)
        ck_assert(runq_push(&q, (void *)i));
    ck_assert(!runq_push(&q, (void *)999));
    for (uintptr_t i = 1; i <= RUNQ_SIZE; i++)
        ck_assert_ptr_eq(runq_pop(&q), (void *)i);
    ck_assert_ptr_null(runq_pop(&q));
}
END_TEST

static struct runq sq_owner, sq_thief[2];
static _Atomic int taken[20001];
static _Atomic bool owner_done;

static void *thief(void *arg)
{
    struct runq *mine = arg;
    while (!atomic_load(&owner_done) || runq_len(&sq_owner)) {
        void *p = runq_steal(&sq_owner, mine);
        if (p)
            atomic_fetch_add(&taken[(uintptr_t)p], 1);
        while ((p = runq_pop(mine)))
            atomic_fetch_add(&taken[(uintptr_t)p], 1);
    }
    return NULL;
}

START_TEST(runq_steal_loses_and_duplicates_nothing)
{
    runq_init(&sq_owner);
    runq_init(&sq_thief[0]);
    runq_init(&sq_thief[1]);
    memset(taken, 0, sizeof taken);
    atomic_store(&owner_done, false);
    pthread_t t[2];
    pthread_create(&t[0], NULL, thief, &sq_thief[0]);
    pthread_create(&t[1], NULL, thief, &sq_thief[1]);
    for (uintptr_t i = 1; i <= 20000; i++) {
        while (!runq_push(&sq_owner, (void *)i)) {
            void *p = runq_pop(&sq_owner);
            if (p)
                atomic_fetch_add(&taken[(uintptr_t)p], 1);
        }
        if (i % 3 == 0) {
            void *p = runq_pop(&sq_owner);
            if (p)
                atomic_fetch_add(&taken[(uintptr_t)p], 1);
        }
    }
    atomic_store(&owner_done, true);
    void *p;
    while ((p = runq_pop(&sq_owner)))
        atomic_fetch_add(&taken[(uintptr_t)p], 1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    for (int i = 1; i <= 20000; i++)
        ck_assert_msg(atomic_load(&taken[i]) == 1, "item %d taken %d times", i, taken[i]);
}
END_TEST

struct tnode {
    struct mq_node q;
    int producer, seq;
};

static struct mbox mb;
static _Atomic int wakeups;

static void *producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        struct tnode *n = malloc(sizeof *n);
        n->producer = id;
        n->seq = i;
        if (mbox_push(&mb, &n->q))
            atomic_fetch_add(&wakeups, 1);
    }
    return NULL;
}

START_TEST(mailbox_mpsc_keeps_per_producer_order_and_wakes_once_per_wait)
{
    mbox_init(&mb);
    atomic_store(&wakeups, 0);
    ck_assert(mbox_try_wait(&mb)); /* empty: the consumer may wait */
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, producer, (void *)(intptr_t)i);
    int next[3] = { 0, 0, 0 }, got = 0, waits = 1;
    while (got < 60000) {
        struct mq_node *qn;
        enum mbox_pop_result r = mbox_pop(&mb, &qn);
        if (r == MBOX_GOT) {
            struct tnode *n = (struct tnode *)qn;
            ck_assert_int_eq(n->seq, next[n->producer]);
            next[n->producer]++;
            got++;
            free(n);
        } else if (r == MBOX_EMPTY) {
            /* Every successful wait must be ended by exactly one push. */
            if (mbox_try_wait(&mb)) {
                waits++;
                while (atomic_load(&wakeups) < waits && got < 60000)
                    ;
            }
        }
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&wakeups), waits);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("units");
    TCase *tc = tcase_create("structures");
    tcase_add_test(tc, wheel_fires_each_entry_once_never_early);
    tcase_add_test(tc, wheel_remove_is_o1_and_exact);
    tcase_add_test(tc, wheel_due_entry_fires_on_next_advance);
    tcase_add_test(tc, runq_fifo_and_bounded);
    tcase_add_test(tc, runq_steal_loses_and_duplicates_nothing);
    tcase_add_test(tc, mailbox_mpsc_keeps_per_producer_order_and_wakes_once_per_wait);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
