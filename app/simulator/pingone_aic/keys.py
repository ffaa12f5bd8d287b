"""The demo credentials of the simulated tenant: a service account with its key pair (what the
tenant's admin console hands out once, as a JWK) and an OAuth2 client for the second sign-in mode.

These are published demo values for the simulator and the embedded demo, never a real secret:
the simulator keeps the public half to check signatures, `demo_target` hands the private half to
leaver's adapter.
"""

from __future__ import annotations

import json

#: The service account's ID (a UUID): the `iss` and `sub` of its JWT bearer assertions.
SERVICE_ACCOUNT_ID = "3d5e1f6a-7b2c-4e89-9a41-0c6d8e2f4b17"
#: The OAuth2 client of the client-credentials mode, in the `alpha` realm.
CLIENT_ID = "leaver-service"
CLIENT_SECRET = "leaver-demo-client-secret"

#: The service account's private key as the console downloads it (RS256, 2048 bits).
DEMO_PRIVATE_JWK: dict[str, str | list[str]] = {
    "kty": "RSA",
    "n": (
        "vZdcmlHyMWgDgYjAo1c0sYL4guyTueKA-2reeJjxlaaSl9EE3KH5bKtvSBEmWxVvhufiidZIlUC_pM5dHAulMLT3EYW7FD_F"
        "JM9A31-WX_KNFYobsEwALI76uj-lgm4zA2ADa_a6fMIpDgVVrwT0kl3ce3lH1-MUx5zJk08EhPeXfZIk065A8bNUbZXQkvfe"
        "NcLNSxFcaDGyxGMf7CffT0WEe9TAaX3VdnWe6a6uDcpvRi4hFyhLHizZ2P3Kkab7vGN4nZI0EpLtPpd8ENr3AEFG1_ryVD5j"
        "_u9_PK72s4wrZo9VmGRNPtKuPWNFvST9OwOE9Jq3sQ0EDWr5pMUDlw"
    ),
    "e": "AQAB",
    "d": (
        "QEetcfUOtImbhrOi_L54cycAswMbIw8UxCl7vE--uQp88VRA3b1dH-cQF9MYuhEOeyLrv-gTO-d0EqCVGQkpvNXeXuaEg10L"
        "rmtGh3WVOnq2MvNcZ-2csX7Yq4UgzJQoX6CSCGzi1aHO4Z4Vav23HlkMhCCepyeqx_L0tSk5Uws4YCAffNMcpi1ZrmikKw9f"
        "IJZIRTMAeVwas9maoUq4SgdeD1mU0gzPHA9SMBPCMxgQjF7HZExm7x27mKkR3sUbqUZku1rCA3F8ke3iJxjl0StOe0QzXnUK"
        "F50GWDR-NfdC-ZQMCR4eNEFCHSJLIFh_r7RABmJu1USq7J_zhiwKoQ"
    ),
    "p": (
        "_F7Ih6q6Td5P_x2_wDB3D_WTcpYTWnkNFhjmFpD5-TikfP-veC12Pao9k79OHYTrSZsuR0oCHoV5Bhh8dULIontrFDLu7CeS"
        "EBaDkQDrxgEFsl9SmlXknFxDOXa2rPKOde-OtkQcoX-zrJt3qVl_sAeMdRU63rg4mgd1aNf3HIM"
    ),
    "q": (
        "wFFtxZC0nL6RvfkIOG-M5pV4qkFIOwdgeaVm1135kxTV7u_GqyLlD-4nv_ZfEEteZA-_hPhg_KyOptaGpl9suNoV9JhcEH-5"
        "YvJoNL1_-owZtjjA4F-VoyzMdpAQdGZfKr2RuWZSAGw4miUeWNhKSLp-ZH_npRWL1CQoWWHBOF0"
    ),
    "dp": (
        "sV48OX04KvoP5xEVbxGg3EqQMnxfZbqmA93D-CA0T4ALuv5IaIIrE_POC0TstbpxUu4JfHj7PFA6Wppi_lbNg8SR4URavwag"
        "lUX9ea_YBPU6974e4_FyFqKRbJWOlcZzcVfISTldlfOWZ71sQE1yfFkR0kf1dAqtXTPYxLLkLdk"
    ),
    "dq": (
        "M8X4IkapiMT44UaoguDs8qpsmJEIi_OZckYn4HTJGmJykWd1eV7kgZxgkRoXT4CqwY9HxNlE6uDdama4SxPHZiA35ugZaMup"
        "scyGZyRYzq9mwJqYug6hbxNBW-2-sEda-VudXmcATmLT_hNeDxbzMI8cNZwFVXjucsblIeLiLHU"
    ),
    "qi": (
        "s8f-WFiQwG4mCGnyB0TxZ6DignQyWrhSfk27oTW0hDIeH62fc-vBRMY-MMkdz4eN3ojPd4UXVQM1FTFeibxzzG0tWR2sEAWH"
        "-Og1MQKaOtT2SpkJ8qM5DGdXha2n1glD9i2IrejN6W0OZeD_ROrlQPU8IqZtIax3QbvpblNE0-Y"
    ),
}
#: The public half the tenant keeps on the service account.
DEMO_PUBLIC_JWK: dict[str, str | list[str]] = {k: DEMO_PRIVATE_JWK[k] for k in ("kty", "n", "e")}


def demo_private_key_text() -> str:
    """The private JWK as the text of the downloaded file (what `private_key` holds)."""
    return json.dumps(DEMO_PRIVATE_JWK)
