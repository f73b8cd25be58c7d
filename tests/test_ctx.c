/* The context switch on its own. */
#include "harness.h"
#include "ctx_selftest.h"

START_TEST(context_switch_preserves_registers_and_fp_state)
{
    ck_assert_int_eq(ctx_selftest(), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ctx");
    TCase *tc = tcase_create("switch");
    tcase_add_test(tc, context_switch_preserves_registers_and_fp_state);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
