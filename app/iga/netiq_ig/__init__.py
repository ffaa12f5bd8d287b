"""Adapter for NetIQ / OpenText Identity Governance 3.6 - 4.x (contract: backends/netiq-ig.md).

IG answers a removal request without any ID, so every submission writes a marker
(`<key>:<plan item id>`) into the request and item `reason`, then finds its own items again through
`POST /api/request/requests` (§7). The same lookup makes a lost or uncertain submit recoverable.
Every value the contract marks as assumed [A] is a field of `NetIqIgOptions`.

The package: `options` (the knobs), `wire` (IG's JSON to and from the domain), `client` (the calls).
"""

from app.iga.netiq_ig.client import OSP_TOKEN_PATH, SYSTEM, NetIqIgClient
from app.iga.netiq_ig.options import NetIqIgOptions
from app.iga.netiq_ig.wire import STATUS_MAP, fault_text, item_state, map_status

__all__ = [
    "OSP_TOKEN_PATH",
    "STATUS_MAP",
    "SYSTEM",
    "NetIqIgClient",
    "NetIqIgOptions",
    "fault_text",
    "item_state",
    "map_status",
]
