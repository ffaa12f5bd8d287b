"""Who may read and who may act: named ops tokens with a role, kept only as SHA-256 digests, and
the console's server-side sessions. The audit's actor is always the name found here, never what a
request body claims."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.models import ConsoleSession, OpsToken, utcnow

Role = Literal["reader", "operator"]
ROLES: tuple[Role, ...] = ("reader", "operator")
TOKEN_PREFIX = "lvr_"


@dataclass(frozen=True)
class Operator:
    """A signed-in person or system: `name` goes into the audit trail."""

    name: str
    role: Role
    by_cookie: bool = False  # ambient credentials: state changes need a same-origin check

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


def digest(secret: str) -> str:
    """Tokens are long random strings, so one SHA-256 is enough (no slow hash needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_token(session: AsyncSession, name: str, role: Role) -> str:
    """A new token; the only time its value exists outside the holder's hands."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(OpsToken(name=name, role=role, digest=digest(raw), created_at=utcnow()))
    try:
        await session.flush()
    except IntegrityError:
        raise ValueError(f"a token named {name!r} exists already") from None
    return raw


async def list_tokens(session: AsyncSession) -> list[OpsToken]:
    return list(await session.scalars(select(OpsToken).order_by(OpsToken.id)))


async def revoke_token(session: AsyncSession, name: str) -> bool:
    token = await session.scalar(select(OpsToken).where(OpsToken.name == name, OpsToken.revoked_at.is_(None)))
    if token is None:
        return False
    token.revoked_at = utcnow()
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_id == token.id))
    return True


async def operator_for_token(session: AsyncSession, raw: str) -> tuple[Operator, int] | None:
    token = await session.scalar(select(OpsToken).where(OpsToken.digest == digest(raw), OpsToken.revoked_at.is_(None)))
    if token is None:
        return None
    return Operator(token.name, token.role if token.role in ROLES else "reader"), token.id


async def open_session(session: AsyncSession, operator: Operator, token_id: int | None, hours: float) -> str:
    raw = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            digest=digest(raw),
            operator=operator.name,
            role=operator.role,
            token_id=token_id,
            expires_at=utcnow() + timedelta(hours=hours),
        )
    )
    return raw


async def operator_for_session(session: AsyncSession, raw: str) -> Operator | None:
    row = await session.scalar(
        select(ConsoleSession).where(ConsoleSession.digest == digest(raw), ConsoleSession.expires_at > utcnow())
    )
    if row is None:
        return None
    return Operator(row.operator, row.role if row.role in ROLES else "reader", by_cookie=True)


async def close_session(session: AsyncSession, raw: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.digest == digest(raw)))
