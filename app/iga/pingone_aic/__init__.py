"""PingOne Advanced Identity Cloud (Identity Governance) adapter: per-item remove requests found
again by (user, item) and the correlation key in `externalRequestId` (contract
`backends/pingone-aic.md`; operator guide `docs/pingone-aic.md`).

`options` holds every assumed value, `auth` the service-account JWT bearer grant (and client
credentials), `wire` the pure reading and writing of AIC documents, `client` the calls.
"""

from app.iga.pingone_aic.auth import JwtBearerToken
from app.iga.pingone_aic.client import PingOneAicClient
from app.iga.pingone_aic.options import PingOneAicOptions, RequestTypes

__all__ = ["JwtBearerToken", "PingOneAicClient", "PingOneAicOptions", "RequestTypes"]
