/* Stack allocator: how arena stacks' memory goes back to the kernel. */
#include <check.h>
#include <stdint.h>
#include <sys/mman.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc/stack.h"

#if defined(__SANITIZE_THREAD__)
/* A fiber each, and TSan allows 8128 threads and fibers: no cache, so that
 * stacks beyond the pool reach the arenas, too few to pass RESIDENT_MAX. */
#define SANITIZED 1
#define N_STACKS 7000u
#define CACHE(c) NULL
#elif defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#define N_STACKS 12000u
#define CACHE(c) (c)
#else
#define N_STACKS 40000u
#define CACHE(c) (c)
#endif
/* What stack.c may keep warm: a cache, the pool, the idle arena stacks. */
#define KEPT_WARM (2048u + 4096u + 4096u)
#define SIZE (64u * 1024u)

static long page_size(void) { return sysconf(_SC_PAGESIZE); }

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (size_t)rss * (size_t)page_size();
}

/* Dirties the stack's top page, as a process's first frames do. */
static void touch(struct stack *s, uint64_t mark)
{
    *(volatile uint64_t *)(s->lo + s->size - sizeof mark) = mark;
}

static uint64_t mark_of(const struct stack *s)
{
    return *(const volatile uint64_t *)(s->lo + s->size - sizeof(uint64_t));
}

static void check_rss_near(size_t rss, size_t base, size_t stacks_resident)
{
#ifndef SANITIZED
    size_t bound = base + stacks_resident * (size_t)page_size() + 16u * 1024 * 1024;
    ck_assert_msg(rss <= bound, "resident %zu kB, expected at most %zu kB", rss / 1024, bound / 1024);
#else
    /* the sanitizers' shadow memory grows with the ranges touched */
    (void)rss;
    (void)base;
    (void)stacks_resident;
#endif
}

/* n stacks into v, each with its top page dirtied with its index + 1. */
static void get_touched(struct stack_cache *c, struct stack **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        v[i] = stack_get(c, 0);
        ck_assert_ptr_nonnull(v[i]);
        touch(v[i], i + 1);
    }
}

/* Every stack of v back, none left in use, and the allocator torn down. */
static void put_all_and_fini(struct stack_cache *c, struct stack_cache *c0, struct stack **v,
                             unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        stack_put(c, v[i]);
    ck_assert_int_eq(stack_in_use(), 0);
    stack_cache_flush(c0);
    stack_global_fini();
}

/* Every stack of v still holds the mark get_touched or touch gave it, all
 * go back (no cache), and the allocator is torn down. */
static void put_marked_and_fini(struct stack **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_eq(mark_of(v[i]), i + 1);
        stack_put(NULL, v[i]);
    }
    ck_assert_int_eq(stack_in_use(), 0);
    stack_global_fini();
}

START_TEST(a_burst_of_exits_releases_whole_arenas)
{
    stack_global_init(SIZE, 0);
    struct stack_cache c0 = { 0 }, *c = CACHE(&c0);
    struct stack **v = malloc(N_STACKS * sizeof *v);
    size_t rss0 = rss_bytes();
    uint64_t calls0 = stack_mmaps();
    for (unsigned i = 0; i < N_STACKS; i++) {
        v[i] = stack_get(c, 0);
        ck_assert_ptr_nonnull(v[i]);
        ck_assert_ptr_nonnull(v[i]->arena);
        ck_assert(!v[i]->guarded); /* HIVE_GUARD_STACKS=0: canaries only */
        touch(v[i], i + 1);
    }
    ck_assert_int_eq(stack_in_use(), N_STACKS);
    uint64_t calls1 = stack_mmaps();
    ck_assert_uint_le(calls1 - calls0, N_STACKS / 64 + 1);
    for (unsigned i = 0; i < N_STACKS; i++)
        stack_put(c, v[i]);
    ck_assert_int_eq(stack_in_use(), 0);
    /* one system call per arena at most, not one per stack */
    uint64_t calls2 = stack_mmaps();
    ck_assert_uint_le(calls2 - calls1, N_STACKS / 64 + 1);
    check_rss_near(rss_bytes(), rss0, KEPT_WARM);

    /* Everything comes back without a new mapping; released stacks are
     * fresh zero pages, warm ones keep what they held. */
    for (unsigned i = 0; i < N_STACKS; i++) {
        v[i] = stack_get(c, 0);
        ck_assert_ptr_nonnull(v[i]);
        ck_assert(stack_intact(v[i]));
    }
    ck_assert_uint_eq(stack_mmaps(), calls2);
    unsigned zeroed = 0;
    for (unsigned i = 0; i < N_STACKS; i++)
        zeroed += mark_of(v[i]) == 0;
    ck_assert_uint_ge(zeroed, N_STACKS > KEPT_WARM ? N_STACKS - KEPT_WARM : 0);
    put_all_and_fini(c, &c0, v, N_STACKS);
    free(v);
}
END_TEST

START_TEST(scattered_exits_stay_bounded_and_spare_live_stacks)
{
    stack_global_init(SIZE, 0);
    struct stack **v = malloc(N_STACKS * sizeof *v);
    size_t rss0 = rss_bytes();
    get_touched(NULL, v, N_STACKS);
    /* Every 16th stays in use: no arena is ever all free. */
    uint64_t calls0 = stack_mmaps();
    unsigned live = 0;
    for (unsigned i = 0; i < N_STACKS; i++) {
        if (i % 16 == 0)
            live++;
        else
            stack_put(NULL, v[i]);
    }
    ck_assert_int_eq(stack_in_use(), live);
    /* released in runs between the live ones: four per arena, and a few
     * arenas released twice as they fill */
    ck_assert_uint_le(stack_mmaps() - calls0, 5 * (N_STACKS / 64 + 1));
    check_rss_near(rss_bytes(), rss0, KEPT_WARM + live);
    for (unsigned i = 0; i < N_STACKS; i += 16) {
        ck_assert_uint_eq(mark_of(v[i]), i + 1);
        ck_assert(stack_intact(v[i]));
    }
    for (unsigned i = 0; i < N_STACKS; i += 16)
        stack_put(NULL, v[i]);
    ck_assert_int_eq(stack_in_use(), 0);
    check_rss_near(rss_bytes(), rss0, KEPT_WARM);
    stack_global_fini();
    free(v);
}
END_TEST

/* Untouched arena stacks are handed out as reservations: nothing of
 * their memory is touched (resident memory stays put), the in-use count
 * counts them, a claim gives a whole stack whose descriptor sits in its
 * own top bytes, and a reservation given back unclaimed is handed out
 * again without a new mapping. */
START_TEST(reservations_touch_nothing_until_claimed)
{
    enum { N = 4096 };
    stack_global_init(SIZE, 0);
    struct stack_resv *r = calloc(N, sizeof *r);
    size_t rss0 = rss_bytes();
    for (unsigned i = 0; i < N; i++) {
        ck_assert_ptr_null(stack_get_or_reserve(NULL, 0, &r[i]));
        ck_assert_ptr_nonnull(r[i].arena);
    }
    ck_assert_int_eq(stack_in_use(), N);
#ifndef SANITIZED
    /* N stacks' first pages would be 16 MiB; the reservations cost only
     * the arenas' bookkeeping */
    ck_assert_uint_lt(rss_bytes(), rss0 + 2u * 1024 * 1024);
#else
    (void)rss0;
#endif
    struct stack *s = stack_claim(&r[0]);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->size + sizeof *s, SIZE);
    ck_assert_ptr_eq((char *)s, s->lo + s->size); /* the descriptor tops the stack */
    ck_assert(stack_intact(s));
    touch(s, 42);
    ck_assert_uint_eq(mark_of(s), 42);
    uint64_t calls = stack_mmaps();
    for (unsigned i = 1; i < N; i++)
        stack_unreserve(NULL, &r[i]);
    ck_assert_int_eq(stack_in_use(), 1);
    /* given back, then handed out again from the same arenas */
    for (unsigned i = 1; i < N; i++) {
        ck_assert_ptr_null(stack_get_or_reserve(NULL, 0, &r[i]));
        ck_assert_ptr_nonnull(r[i].arena);
    }
    ck_assert_uint_eq(stack_mmaps(), calls);
    for (unsigned i = 1; i < N; i++) {
        struct stack *t = stack_claim(&r[i]);
        ck_assert_ptr_ne(t, s);
        ck_assert_uint_eq(mark_of(t), 0); /* fresh pages */
        stack_put(NULL, t);
    }
    stack_put(NULL, s);
    ck_assert_int_eq(stack_in_use(), 0);
    stack_global_fini();
    free(r);
}
END_TEST

/* Page faults this thread has taken. */
static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_minflt;
}

/* Reservations claimed out of order (a spawner's burst, run first on the
 * other scheduler) fault each stack's top page once. A stack's canary
 * lies in the stack below's top page: when the first switch read it
 * before that stack was claimed, the read mapped the zero page, and the
 * claim's descriptor write faulted again to replace it, with a TLB
 * shootdown of every other core. Here the odd stacks are claimed and
 * their canaries checked first, then the even ones are claimed. */
START_TEST(reservations_claimed_out_of_order_fault_each_page_once)
{
    enum { N = 1024 };
    stack_global_init(SIZE, 0);
    struct stack_resv *r = calloc(N, sizeof *r);
    struct stack **v = calloc(N, sizeof *v);
    for (unsigned i = 0; i < N; i++)
        ck_assert_ptr_null(stack_get_or_reserve(NULL, 0, &r[i]));
    long f0 = minor_faults();
    for (unsigned i = 1; i < N; i += 2) {
        v[i] = stack_claim(&r[i]);
        ck_assert(stack_intact(v[i]));
    }
    for (unsigned i = 0; i < N; i += 2)
        v[i] = stack_claim(&r[i]);
    long faults = minor_faults() - f0;
#ifndef SANITIZED
    /* one per stack, one per arena for the lead page its stack 0's canary
     * is read from (unclaimed here), a few for the test's own pages */
    ck_assert_int_le(faults, N + N / 64 + 8);
    ck_assert_int_ge(faults, N);
#else
    (void)faults; /* the sanitizers fault their shadow pages in too */
#endif
    for (unsigned i = 0; i < N; i++) {
        ck_assert(stack_intact(v[i]));
        stack_put(NULL, v[i]);
    }
    ck_assert_int_eq(stack_in_use(), 0);
    stack_global_fini();
    free(v);
    free(r);
}
END_TEST

/* What a trim leaves warm: the cache's keep, the pool's, and the idle
 * arena stacks below RESIDENT_MAX (stack.c). */
#define TRIMMED_WARM (STACK_TRIM_KEEP + STACK_TRIM_POOL + 128u)

/* A quiet scheduler's trim (stack_trim): a full cache and pool go down to
 * what the trim keeps, their memory goes back to the kernel in batches,
 * stacks in use keep their contents, and everything is handed out again
 * from the same arenas. */
START_TEST(a_trim_gives_back_the_cache_and_pool_but_spares_live_stacks)
{
    stack_global_init(SIZE, 0);
    struct stack_cache c0 = { 0 }, *c = CACHE(&c0);
    struct stack **v = malloc(N_STACKS * sizeof *v);
    size_t rss0 = rss_bytes();
    get_touched(c, v, N_STACKS);
    /* Every 8th stays in use; the rest fill the cache and the pool. */
    unsigned live = 0;
    for (unsigned i = 0; i < N_STACKS; i++) {
        if (i % 8 == 0)
            live++;
        else
            stack_put(c, v[i]);
    }
    uint64_t calls0 = stack_mmaps();
    unsigned gone = stack_trim(c, STACK_TRIM_KEEP);
    if (c)
        ck_assert_uint_le(c->count, STACK_TRIM_KEEP);
    /* the cache's 2048 (its limit) and the pool's 4096 held more than
     * the trim keeps: all but those left */
    ck_assert_uint_ge(gone, N_STACKS - live > KEPT_WARM ? 4096u - STACK_TRIM_POOL : 1u);
    /* batches, not a call per stack: runs between the live ones */
    ck_assert_uint_le(stack_mmaps() - calls0, gone / 7 + N_STACKS / 64 + 1);
    ck_assert_int_eq(stack_in_use(), live);
    check_rss_near(rss_bytes(), rss0, TRIMMED_WARM + live);
    for (unsigned i = 0; i < N_STACKS; i += 8) {
        ck_assert_uint_eq(mark_of(v[i]), i + 1);
        ck_assert(stack_intact(v[i]));
    }
    /* nothing left to give: a second trim does nothing */
    calls0 = stack_mmaps();
    ck_assert_uint_eq(stack_trim(c, STACK_TRIM_KEEP), 0);
    ck_assert_uint_eq(stack_mmaps(), calls0);
    for (unsigned i = 0; i < N_STACKS; i++)
        if (i % 8)
            ck_assert_ptr_nonnull(v[i] = stack_get(c, 0));
    ck_assert_uint_eq(stack_mmaps(), calls0); /* the same arenas again */
    put_all_and_fini(c, &c0, v, N_STACKS);
    free(v);
}
END_TEST

/* Stacks mapped alone (with a guard page: what a kernel without guard
 * regions gets, forced here) leave a trim unmapped, one munmap each, and
 * new ones are mapped with their guard again. */
START_TEST(a_trim_unmaps_guarded_stacks_beyond_the_keep)
{
    enum { N = 512 };
    stack_guard_regions_force(0);
    stack_global_init(SIZE, N);
    struct stack_cache c0 = { 0 }, *c = CACHE(&c0);
    struct stack *v[N];
    for (unsigned i = 0; i < N; i++) {
        v[i] = stack_get(c, 0);
        ck_assert_ptr_nonnull(v[i]);
        ck_assert(v[i]->guarded);
        ck_assert_ptr_null(v[i]->arena);
        touch(v[i], i + 1);
    }
    for (unsigned i = 0; i < N; i++)
        stack_put(c, v[i]);
    uint64_t calls0 = stack_mmaps();
    /* all N went to the cache (or, without one, to the pool): what it
     * keeps stays, the rest goes, past the pool */
    unsigned kept = c ? STACK_TRIM_KEEP : STACK_TRIM_POOL;
    unsigned gone = stack_trim(c, STACK_TRIM_KEEP);
    ck_assert_uint_eq(gone, N - kept);
    ck_assert_uint_eq(stack_mmaps() - calls0, gone); /* one munmap each */
    for (unsigned i = 0; i < N; i++) {
        v[i] = stack_get(c, 0);
        ck_assert_ptr_nonnull(v[i]);
        ck_assert(v[i]->guarded);
        ck_assert(stack_intact(v[i]));
    }
    put_all_and_fini(c, &c0, v, N);
}
END_TEST

/* Map entries (lines of /proc/self/maps). */
static long map_entries(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    long n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* Guard pages are the kernel's guard regions where it has them (asked
 * here independently of stack.c's own probe), which take no map entry:
 * 256 guarded stacks add a few entries (their arenas), not two each as
 * mprotect's split pages do. Where the kernel lacks them, each guarded
 * stack is mapped alone, two entries. */
START_TEST(guarded_stacks_are_guard_regions_where_the_kernel_has_them)
{
    enum { N = 256 };
    long pg = page_size();
    void *p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    bool kernel_has = madvise(p, (size_t)pg, 102 /* MADV_GUARD_INSTALL */) == 0;
    munmap(p, (size_t)pg);
    stack_global_init(SIZE, N);
    ck_assert_int_eq(stack_guard_regions(), kernel_has);
    struct stack *v[N];
    long e0 = map_entries();
    for (unsigned i = 0; i < N; i++) {
        ck_assert_ptr_nonnull(v[i] = stack_get(NULL, 0));
        ck_assert(v[i]->guarded);
        ck_assert(kernel_has ? v[i]->arena != NULL : v[i]->arena == NULL);
        touch(v[i], i + 1);
    }
    long added = map_entries() - e0;
#if !defined(__SANITIZE_THREAD__)
    if (kernel_has)
        ck_assert_int_le(added, N / 8);
    else
        ck_assert_int_ge(added, 2 * N - 8);
#else
    (void)added; /* each stack's TSan fiber maps memory of TSan's own */
#endif
    put_marked_and_fini(v, N);
}
END_TEST

/* Where the kernel has guard regions, every default-size stack is guarded
 * however small the budget for stacks mapped alone (4 here): all come
 * from arenas, a mapping and one guard call per 64 stacks (64 where the
 * kernel refuses process_madvise for its caller), adding no map entry per
 * stack. */
START_TEST(arena_stacks_are_all_guarded_for_a_call_per_arena)
{
    enum { N = 1000 };
    if (!stack_guard_regions()) {
        /* the same check of the fallback: past the budget, unguarded arenas */
        stack_global_init(SIZE, 4);
        struct stack *v[N];
        for (unsigned i = 0; i < N; i++)
            ck_assert_ptr_nonnull(v[i] = stack_get(NULL, 0));
        ck_assert(!v[N - 1]->guarded);
        ck_assert_ptr_nonnull(v[N - 1]->arena);
        for (unsigned i = 0; i < N; i++)
            stack_put(NULL, v[i]);
        stack_global_fini();
        return;
    }
    stack_global_init(SIZE, 4);
    struct stack *v[N];
    long e0 = map_entries();
    uint64_t calls0 = stack_mmaps();
    for (unsigned i = 0; i < N; i++) {
        ck_assert_ptr_nonnull(v[i] = stack_get(NULL, 0));
        ck_assert(v[i]->guarded);
        ck_assert_ptr_nonnull(v[i]->arena);
        ck_assert(stack_in_guard(v[i], v[i]->lo - 1));
        ck_assert(!stack_in_guard(v[i], v[i]->lo));
        ck_assert_uint_eq(v[i]->size + sizeof *v[i], SIZE); /* the guard is extra */
        touch(v[i], i + 1);
    }
    uint64_t arenas = N / 64 + 1;
    ck_assert_uint_le(stack_mmaps() - calls0, arenas * (1 + 64));
#if !defined(__SANITIZE_THREAD__)
    ck_assert_int_le(map_entries() - e0, (long)arenas);
#else
    (void)e0;
#endif
    put_marked_and_fini(v, N);
}
END_TEST

#ifndef SANITIZED
static sigjmp_buf g_fault_jb;
static void on_fault(int sig)
{
    (void)sig;
    siglongjmp(g_fault_jb, 1);
}

/* Does reading addr fault? */
static bool read_faults(const char *addr)
{
    struct sigaction sa = { .sa_handler = on_fault }, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old);
    volatile bool faulted = true;
    if (sigsetjmp(g_fault_jb, 1) == 0) {
        (void)*(const volatile char *)addr;
        faulted = false;
    }
    sigaction(SIGSEGV, &old, NULL);
    return faulted;
}

/* An arena's guards stay when its stacks' pages go back to the kernel: a
 * burst of exits releases whole arenas (madvise MADV_DONTNEED), and the
 * stacks handed out again from them still fault below their lowest byte
 * and not on it. */
START_TEST(arena_guards_survive_the_release_of_their_stacks)
{
    if (!stack_guard_regions())
        return; /* arena_stacks_are_all_guarded_for_a_call_per_arena covers the fallback */
    stack_global_init(SIZE, 4);
    struct stack **v = malloc(N_STACKS * sizeof *v);
    get_touched(NULL, v, N_STACKS);
    uint64_t calls0 = stack_mmaps();
    for (unsigned i = 0; i < N_STACKS; i++)
        stack_put(NULL, v[i]);
    ck_assert_uint_gt(stack_mmaps(), calls0); /* pages were given back */
    unsigned zeroed = 0;
    for (unsigned i = 0; i < N_STACKS; i++) {
        ck_assert_ptr_nonnull(v[i] = stack_get(NULL, 0));
        ck_assert(v[i]->guarded);
        zeroed += mark_of(v[i]) == 0;
        if (i % 97 == 0) {
            ck_assert(read_faults(v[i]->lo - 1));
            ck_assert(!read_faults(v[i]->lo));
        }
    }
    ck_assert_uint_ge(zeroed, N_STACKS - KEPT_WARM); /* released, not kept */
    for (unsigned i = 0; i < N_STACKS; i++)
        stack_put(NULL, v[i]);
    stack_global_fini();
    free(v);
}
END_TEST

/* A guarded stack's guard page faults on a read (the sanitizers would
 * report the fault themselves instead of raising the signal). */
START_TEST(a_guard_page_faults_when_touched)
{
    stack_global_init(SIZE, 1);
    struct stack *s = stack_get(NULL, 0);
    ck_assert_ptr_nonnull(s);
    ck_assert(s->guarded);
    ck_assert(stack_in_guard(s, s->map));
    (void)*(volatile char *)(s->lo - 1); /* the byte just below the stack */
    ck_abort_msg("the guard page did not fault");
}
END_TEST
#endif

int main(void)
{
    Suite *s = suite_create("stack");
    TCase *tc = tcase_create("release");
    tcase_add_test(tc, a_burst_of_exits_releases_whole_arenas);
    tcase_add_test(tc, scattered_exits_stay_bounded_and_spare_live_stacks);
    tcase_add_test(tc, reservations_touch_nothing_until_claimed);
    tcase_add_test(tc, reservations_claimed_out_of_order_fault_each_page_once);
    tcase_add_test(tc, a_trim_gives_back_the_cache_and_pool_but_spares_live_stacks);
    tcase_add_test(tc, a_trim_unmaps_guarded_stacks_beyond_the_keep);
    tcase_add_test(tc, guarded_stacks_are_guard_regions_where_the_kernel_has_them);
    tcase_add_test(tc, arena_stacks_are_all_guarded_for_a_call_per_arena);
#ifndef SANITIZED
    tcase_add_test(tc, arena_guards_survive_the_release_of_their_stacks);
    tcase_add_test_raise_signal(tc, a_guard_page_faults_when_touched, SIGSEGV);
#endif
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
