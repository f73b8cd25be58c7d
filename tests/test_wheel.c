/* The timer wheel on its own (runtime/ds/wheel.c): entries fire once, never
 * early, at every level; removal is exact. */
#include "harness.h"
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

static Suite *suite(void)
{
    Suite *s = suite_create("wheel");
    TCase *tc = tcase_create("wheel");
    tcase_add_test(tc, wheel_fires_each_entry_once_never_early);
    tcase_add_test(tc, wheel_remove_is_o1_and_exact);
    tcase_add_test(tc, wheel_due_entry_fires_on_next_advance);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
