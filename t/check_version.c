/* SPDX-License-Identifier: MIT */
/*
 * check_version.c - the version macros, the runtime version functions and
 * the package version from configure.ac all agree (STYLE.md 1.1).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stage.h>

START_TEST(test_macro_matches_package)
{
    ck_assert_str_eq(STAGE_VERSION_STRING, PACKAGE_VERSION);
}
END_TEST

START_TEST(test_string_function)
{
    const char *s = stage_version_string();

    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, STAGE_VERSION_STRING);
    ck_assert_str_eq(s, PACKAGE_VERSION);
}
END_TEST

START_TEST(test_hex_function)
{
    ck_assert_uint_eq(stage_version(), STAGE_VERSION_HEX);
    ck_assert_uint_eq(STAGE_VERSION_HEX,
                      ((unsigned)STAGE_VERSION_MAJOR << 16) |
                          ((unsigned)STAGE_VERSION_MINOR << 8) |
                          (unsigned)STAGE_VERSION_PATCH);
}
END_TEST

START_TEST(test_numbers_match_string)
{
    char buf[64];

    snprintf(buf, sizeof buf, "%d.%d.%d", STAGE_VERSION_MAJOR,
             STAGE_VERSION_MINOR, STAGE_VERSION_PATCH);
    ck_assert_str_eq(buf, STAGE_VERSION_STRING);
}
END_TEST

static Suite *version_suite(void)
{
    Suite *s = suite_create("version");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_macro_matches_package);
    tcase_add_test(tc, test_string_function);
    tcase_add_test(tc, test_hex_function);
    tcase_add_test(tc, test_numbers_match_string);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(version_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
