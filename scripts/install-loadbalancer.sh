#!/bin/sh
# HAProxy, the load balancer in front of the multi-instance rig (localdev/fleet.py, tests/fleet, bench/fleet.py).
# Debian's package; the rig starts its own haproxy process with a generated config on a free loopback port,
# so the packaged service is neither needed nor started. Idempotent: does nothing when haproxy is on the PATH.
set -eu

if command -v haproxy >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-loadbalancer: haproxy is missing and sudo is not available; install the 'haproxy' package as root" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-loadbalancer: no apt-get; install HAProxy 2.6 or newer yourself and put 'haproxy' on the PATH" >&2
    exit 1
fi

echo "install-loadbalancer: installing Debian's haproxy package (once)" >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: the package's post-install must not start the system-wide service (the rig runs its own).
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    CREATED_POLICY=1
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends haproxy
if [ -n "$CREATED_POLICY" ]; then
    $SUDO rm -f "$POLICY"
fi
command -v haproxy >/dev/null 2>&1
