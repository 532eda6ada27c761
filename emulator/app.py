"""The emulator's HTTP surface: the ACS Identity REST API (api.py) plus the /_emulator control endpoints (control.py)."""

from __future__ import annotations

from aiohttp import web

from emulator.api import api
from emulator.control import add_control_routes
from emulator.msi import msi_token
from emulator.service import Emulator

__all__ = ["Emulator", "create_app"]


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app["emulator"] = emulator
    add_control_routes(app)
    app.router.add_get("/_emulator/msi/token", msi_token)
    app.router.add_route("*", "/{tail:(?!_emulator/).*}", api)
    return app
