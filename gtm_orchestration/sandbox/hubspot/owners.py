"""The sandbox portal's fixed sales team: the owners CRM records can be assigned to."""

from __future__ import annotations

from dataclasses import dataclass

# Owners never change in the sandbox, so one fixed moment serves as their created/updated time.
OWNERS_SINCE = "2024-01-02T09:00:00.000Z"


@dataclass(frozen=True)
class Owner:
    """One sales rep of the portal, as HubSpot's owners API describes them."""

    id: str
    user_id: int
    first_name: str
    last_name: str

    @property
    def email(self) -> str:
        return f"{self.first_name.lower()}.{self.last_name.lower()}@sandbox-sales.example"

    def as_hubspot(self) -> dict[str, object]:
        """The owner in the shape of ``GET /crm/v3/owners`` results."""
        return {
            "id": self.id,
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.user_id,
            "userIdIncludingInactive": self.user_id,
            "createdAt": OWNERS_SINCE,
            "updatedAt": OWNERS_SINCE,
            "archived": False,
            "teams": [],
        }


OWNERS: tuple[Owner, ...] = tuple(
    Owner(id=str(10000 + n), user_id=20000 + n, first_name=first, last_name=last)
    for n, (first, last) in enumerate(
        [
            ("Avery", "Brooks"),
            ("Jordan", "Lee"),
            ("Sam", "Patel"),
            ("Riley", "Chen"),
            ("Morgan", "Schmidt"),
            ("Camille", "Dubois"),
            ("Kenji", "Sato"),
            ("Taylor", "Reed"),
        ],
        start=1,
    )
)

OWNER_IDS: tuple[str, ...] = tuple(owner.id for owner in OWNERS)
