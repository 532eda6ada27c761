"""A local ACS Identity service that the unmodified official SDKs talk to.

Run it with ``python -m emulator``; see README.md beside this file for what it covers
and where it differs from the real service.
"""
