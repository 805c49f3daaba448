/* SPDX-License-Identifier: MIT */
/*
 * version.c - the run-time version, for programs that want to compare the
 * library they run with against the header they were compiled with.
 */
#include "common-int.h"

unsigned int stage_version(void) { return STAGE_VERSION_HEX; }

const char *stage_version_string(void) { return STAGE_VERSION_STRING; }
