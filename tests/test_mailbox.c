/* The mailbox queue on its own (runtime/ds/mailbox.h): many producers, one
 * consumer, per-producer order, one wake-up per wait. */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "runtime/ds/mailbox.h"

struct tnode {
    struct mq_node q;
    int producer, seq;
};

static _Alignas(64) struct mbox mb;
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
    Suite *s = suite_create("mailbox");
    TCase *tc = tcase_create("mailbox");
    tcase_add_test(tc, mailbox_mpsc_keeps_per_producer_order_and_wakes_once_per_wait);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
