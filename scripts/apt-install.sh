#!/bin/sh
# Install one Debian package for the test tools, once: `sh scripts/apt-install.sh PACKAGE PRESENT_CHECK HINT [--no-service]`.
#   PRESENT_CHECK  a shell test that is true when the tool is already there (then nothing happens)
#   HINT           what to do instead where this script cannot install (no root and no sudo, or no apt-get)
#   --no-service   keep the package's post-install from starting a system-wide service (policy-rc.d 101):
#                  the tests start their own process with a generated config
# Used by install-chromium.sh and install-loadbalancer.sh.
set -eu

PACKAGE=$1
PRESENT_CHECK=$2
HINT=$3
NO_SERVICE=${4:-}

if sh -c "$PRESENT_CHECK"; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "apt-install: $PACKAGE is missing and sudo is not available; install the '$PACKAGE' package as root" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-install: no apt-get; $HINT" >&2
    exit 1
fi

echo "apt-install: installing Debian's $PACKAGE package (once)" >&2
export DEBIAN_FRONTEND=noninteractive
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=""
if [ "$NO_SERVICE" = "--no-service" ] && [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    CREATED_POLICY=1
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$PACKAGE"
if [ -n "$CREATED_POLICY" ]; then
    $SUDO rm -f "$POLICY"
fi
sh -c "$PRESENT_CHECK"
