#!/usr/bin/env bash
# Install the system packages camprotool uses (tshark). Never fatal: without
# them the features that need them say so in one line, and their tests skip.
set -u
if command -v tshark >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "sysdeps: installing tshark with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq && apt-get install -y -qq tshark) >/tmp/camprotool-sysdeps.log 2>&1 \
        || echo "sysdeps: could not install tshark (see /tmp/camprotool-sysdeps.log); live capture and the tshark cross-check are unavailable" >&2
else
    echo "sysdeps: tshark not found and cannot be installed here (need root and apt-get); live capture and the tshark cross-check are unavailable" >&2
fi
exit 0
