"""structlog setup: JSON in production, console in the demo, secrets redacted on the way out."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = re.compile(r"(secret|password|token|authorization|signature|api[_-]?key|client_secret)", re.I)
SECRET_VALUES = re.compile(r"(whsec_[A-Za-z0-9+/=]+|Bearer\s+[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9._-]+)")


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask values under secret-looking keys, and secret-looking strings anywhere."""
    for key, value in list(event.items()):
        if SECRET_KEYS.search(key):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = SECRET_VALUES.sub("***", value)
    return event


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            # JSON keeps a log.exception's traceback as structured data (the console renders its own).
            *([structlog.processors.dict_tracebacks] if fmt == "json" else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry full URLs
