#!/bin/sh
# Make Debian's chromium available for the browser tests (pytest -m browser).
#
# Idempotent and never fatal: if chromium is already on PATH this does nothing; if it
# is missing and we are root with apt-get, it installs the `chromium` package quietly;
# otherwise it prints one line saying the browser tests will be skipped. Always exits 0,
# so `make test` works on machines without a browser.
set -u

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
        && command -v chromium >/dev/null 2>&1; then
        echo "ensure-chromium: installed $(chromium --version 2>/dev/null | head -n 1)"
        exit 0
    fi
    echo "ensure-chromium: apt-get could not install chromium; browser tests will be skipped."
    exit 0
fi

echo "ensure-chromium: chromium is not installed (installing it needs root and apt-get); browser tests will be skipped."
exit 0
