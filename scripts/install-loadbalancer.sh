#!/bin/sh
# HAProxy, the load balancer in front of the multi-instance rig (localdev/fleet, tests/fleet, bench/fleet.py).
# Debian's package; the rig starts its own haproxy process with a generated config on a free loopback port,
# so the packaged service is neither needed nor started. Idempotent: does nothing when haproxy is on the PATH.
set -eu
exec sh "$(dirname "$0")/apt-install.sh" haproxy 'command -v haproxy >/dev/null 2>&1' \
    "install HAProxy 2.6 or newer yourself and put 'haproxy' on the PATH" --no-service
