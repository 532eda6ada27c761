"""Several host instances behind a real load balancer, sharing one Azurite and one ACS emulator (issue 13).

- :mod:`localdev.fleet.rig`: :func:`start_fleet` starts and stops it all; :class:`Fleet` kills and restarts
  instances and Azurite, and reads what the emulator, the balancer and storage saw.
- :mod:`localdev.fleet.haproxy`: the balancer (why HAProxy: see there); :mod:`localdev.fleet.instances`: one host.
- :mod:`localdev.fleet.load`: async clients signing in as many dev users, honouring ``Retry-After``, recording
  every answer; :mod:`localdev.fleet.verify`: the invariants those answers and the stand-ins' state must meet.

HAProxy comes from Debian: ``sh scripts/install-loadbalancer.sh``.
"""

from localdev.fleet.rig import Fleet, FleetOptions, start_fleet

__all__ = ["Fleet", "FleetOptions", "start_fleet"]
