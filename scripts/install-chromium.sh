#!/bin/sh
# Headless Chromium for the browser end-to-end test (tests/clients/test_browser.py).
# Debian's package, driven by npm's playwright-core: no browser download from a CDN.
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -eu

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-chromium: $CHROMIUM is missing and sudo is not available; install the 'chromium' package as root" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get; install Chromium yourself and make it available as $CHROMIUM (or set CHROMIUM_PATH)" >&2
    exit 1
fi

echo "install-chromium: installing Debian's chromium package (once)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
test -x "$CHROMIUM"
