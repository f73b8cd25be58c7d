/* The run queue on its own (runtime/ds/runq.h): FIFO and bounded for its
 * owner; steals by other threads lose and duplicate nothing. */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"
#include "runtime/ds/runq.h"

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

static Suite *suite(void)
{
    Suite *s = suite_create("runq");
    TCase *tc = tcase_create("runq");
    tcase_add_test(tc, runq_fifo_and_bounded);
    tcase_add_test(tc, runq_steal_loses_and_duplicates_nothing);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
