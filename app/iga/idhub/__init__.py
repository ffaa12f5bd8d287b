"""IDHub (Sath) adapter: cart-and-request removals, found again by the correlation key in their
justification (contract `backends/idhub.md`; operator guide `docs/idhub.md`).

`options` holds every assumed value (routes, tenant header, revoke type, paging, mapping),
`auth` the Keycloak sign-in, `wire` the pure reading of IDHub documents, `client` the calls.
"""

from app.iga.idhub.client import IdHubClient
from app.iga.idhub.options import IdHubOptions, IdHubRoutes, Requester, TokenExchange

__all__ = ["IdHubClient", "IdHubOptions", "IdHubRoutes", "Requester", "TokenExchange"]
