#!/bin/sh
# SPDX-License-Identifier: MIT
# Generate ./configure and the Makefile.in files from a git checkout.
# Needs autoconf, automake, libtool, autoconf-archive and pkgconf.
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf -fi
