"""This ingress replica's view of keys, tenants and limits, set once when the replica starts.

Why a module of its own: Serve ships the ``Ingress`` class to its replica by value (cloudpickle),
so a module global assigned in ``Ingress.__init__`` lands in a copy of ``edge.ingress``'s
globals, while the FastAPI dependencies and middlewares (module functions, shipped by reference)
read the real module and would see no settings at all: auth silently off. Functions of this
module are always shipped by reference, so both sides reach the same ``_current``.
"""

from __future__ import annotations

from common.settings import VoxraySettings
from edge.auth import KeyStore
from edge.tenancy import Tenancy


class Access:
    def __init__(self, settings: VoxraySettings):
        self.settings = settings
        self.enabled = settings.auth.enabled and settings.redis_url is not None
        self.keys = KeyStore(settings.redis_url, settings.calls.key_prefix) if settings.redis_url else None
        self.tenancy = Tenancy(settings.redis_url, settings.calls.key_prefix) if settings.redis_url else None


_current: Access | None = None


def install(settings: VoxraySettings) -> Access:
    """This replica's access, from its settings (``Ingress.__init__``)."""
    global _current
    _current = Access(settings)
    return _current


def current() -> Access | None:
    """The installed access, or None outside a started ingress (auth then allows everything)."""
    return _current
