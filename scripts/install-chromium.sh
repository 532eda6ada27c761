#!/bin/sh
# Headless Chromium for the browser end-to-end test (tests/app/clients/test_browser.py).
# Debian's package, driven by npm's playwright-core: no browser download from a CDN.
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -eu
exec sh "$(dirname "$0")/apt-install.sh" chromium 'test -x /usr/bin/chromium' \
    'install Chromium yourself and make it available as /usr/bin/chromium (or set CHROMIUM_PATH)'
