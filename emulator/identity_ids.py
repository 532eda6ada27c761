"""ACS identity ids, ``8:acs:<resource id>_<unique part>``, and which resource one belongs to.

Real ACS names the resource in every id it creates (SPEC examples: ``8:acs:2dee53b4-…_00000005-14a2-…``) and
answers 401 ``IdentityNotOwned`` for an id whose resource is another one (JS_RECORDINGS, see references.py).
"""

from __future__ import annotations

import uuid

ACS_PREFIX = "8:acs:"


def is_guid(value: str) -> bool:
    """A GUID in its usual 36-character form (any case), as Entra object ids, client ids and ACS resource ids are."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def new_identity_id(resource_id: str) -> str:
    return f"{ACS_PREFIX}{resource_id}_{uuid.uuid4()}"


def owning_resource(identity_id: str) -> str | None:
    """The resource GUID an ``8:acs:`` id names, lower-cased; None for any other shape (nothing to compare)."""
    if not identity_id.startswith(ACS_PREFIX):
        return None
    resource, separator, _ = identity_id[len(ACS_PREFIX) :].partition("_")
    return resource.lower() if separator and is_guid(resource) else None


def belongs_to_another_resource(identity_id: str, resource_id: str) -> bool:
    """True only when the id clearly names another resource; malformed ids are left to the not-found answer."""
    owner = owning_resource(identity_id)
    return owner is not None and owner != resource_id.lower()
