"""Local development: start the cloud's stand-ins (Azurite, the ACS emulator) and the app.

Nothing here is deployed (see .funcignore); the app itself never imports it.
"""
