"""Microsoft's "Create and manage access tokens" quickstart, through ``shared/``.

Runs against the local ACS emulator (started and stopped for the run) unless
``ACS_CONNECTION_STRING`` or ``ACS_ENDPOINT`` is set, in which case it talks to
that real resource. It never prints a whole token: only the start of its
signature, which is useless without the rest.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from shared.adapters.acs import AcsIdentityClient
from shared.settings import load_acs_settings


def redact_token(token: str) -> str:
    """The first characters of the JWT signature, enough to tell two tokens apart."""
    signature = token.rsplit(".", 1)[-1]
    return f"{signature[:12]}... (signature of a {len(token)}-character token, elided)"


async def run_quickstart() -> None:
    async with AcsIdentityClient.from_settings(load_acs_settings(os.environ), os.environ) as service:
        print("Azure Communication Services - Access Tokens Quickstart")
        identity = await service.create_identity()
        print(f"\nCreated an identity: {identity}")

        token = await service.issue_token(identity, ["voip"])
        expires = token.expires_on.strftime("%d/%m/%y %I:%M %S %p")
        print(f"\nIssued an access token with 'voip' scope that expires at {expires}:")
        print(redact_token(token.token))

        await service.revoke_tokens(identity)
        print(f"\nSuccessfully revoked all access tokens for identity with ID: {identity}")

        await service.delete_identity(identity)
        print(f"\nDeleted the identity with ID: {identity}")


def main() -> int:
    if os.environ.get("ACS_CONNECTION_STRING") or os.environ.get("ACS_ENDPOINT"):
        asyncio.run(run_quickstart())
        return 0
    from localdev.emulator_process import start_emulator

    with tempfile.TemporaryDirectory(prefix="acs-quickstart-") as tmp, start_emulator(cert_dir=Path(tmp)) as emulator:
        os.environ["ACS_CONNECTION_STRING"] = emulator.connection_string
        os.environ["ACS_CA_BUNDLE"] = str(emulator.cert_path)
        asyncio.run(run_quickstart())
    return 0


if __name__ == "__main__":
    sys.exit(main())
