#!/usr/bin/env bash
# Install the system packages camprotool uses: tshark (the reassembly and
# dissector cross-checks) and chromium with a CJK font (the headless rendering
# test of `camprotool report`; the font draws the protocol's Chinese reasons).
# Never fatal: without them the features that need them say so in one line,
# and their tests skip.
set -u
LOG=/tmp/camprotool-sysdeps.log
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
updated=0
apt_install() {  # apt_install PACKAGE... ; quiet, logged, status of the install
    export DEBIAN_FRONTEND=noninteractive
    if [ "$updated" = 0 ]; then
        apt-get update -qq >>"$LOG" 2>&1 || return 1
        updated=1
    fi
    apt-get install -y -qq "$@" >>"$LOG" 2>&1
}

if ! command -v tshark >/dev/null 2>&1; then
    if can_apt; then
        echo "sysdeps: installing tshark with apt-get" >&2
        apt_install tshark \
            || echo "sysdeps: could not install tshark (see $LOG); the tshark cross-checks are skipped" >&2
    else
        echo "sysdeps: tshark not found and cannot be installed here (need root and apt-get); the tshark cross-checks are skipped" >&2
    fi
fi

if ! command -v chromium >/dev/null 2>&1; then
    if can_apt; then
        echo "sysdeps: installing chromium with apt-get" >&2
        apt_install chromium \
            || echo "sysdeps: could not install chromium (see $LOG); the report's browser rendering test is skipped" >&2
    else
        echo "sysdeps: chromium not found and cannot be installed here (need root and apt-get); the report's browser rendering test is skipped" >&2
    fi
fi
if command -v fc-list >/dev/null 2>&1 && ! fc-list :lang=zh family 2>/dev/null | grep -q . \
        && can_apt; then
    echo "sysdeps: installing a CJK font (fonts-wqy-zenhei) with apt-get" >&2
    apt_install fonts-wqy-zenhei \
        || echo "sysdeps: could not install fonts-wqy-zenhei (see $LOG); Chinese text in plots and reports shows as boxes" >&2
fi
exit 0
