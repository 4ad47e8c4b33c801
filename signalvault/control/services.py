"""The services a deployment holds open (store, key ring, trail, sealer, credentials, run-time
settings), opened in one place for the gateway, the admin API and every CLI command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from signalvault.config import Settings
from signalvault.control.credentials import ProviderCredentials
from signalvault.control.runtime_settings import RuntimeSettings
from signalvault.crypto.master_key import open_key_source
from signalvault.evidence.incidents import IncidentBook
from signalvault.gateway.keyring import KeyRing, load_pepper
from signalvault.store import Store, open_store
from signalvault.trail.audit import AuditTrail
from signalvault.trail.integrity.sealer import Sealer

if TYPE_CHECKING:
    from signalvault.control.accounts.service import AccountService


@dataclass(slots=True)
class Services:
    """Everything a running gateway holds open."""

    store: Store
    keyring: KeyRing
    trail: AuditTrail
    sealer: Sealer
    credentials: ProviderCredentials
    runtime: RuntimeSettings  # the settings with run-time overrides, kept current
    incidents: IncidentBook  # incidents raised from alerts (SPEC §7c)


def open_services(settings: Settings, *, checkpoint_thread: bool = True) -> Services:
    """Open the store and the key material (also used by CLI commands; `checkpoint_thread` as
    for `open_store`)."""
    master_key = open_key_source(settings).load()
    store = open_store(settings.store, checkpoint_thread=checkpoint_thread)
    store.open()
    try:
        pepper = load_pepper(store, master_key)
    except Exception:
        store.close()
        raise
    trail = AuditTrail(store, master_key)
    providers = tuple(p.name for p in settings.providers)
    return Services(
        store,
        KeyRing(store, pepper),
        trail,
        Sealer(store, master_key, settings.audit),
        ProviderCredentials(store, master_key, trail, providers),
        RuntimeSettings(store, settings),
        IncidentBook(store, trail, settings.incidents),
    )


def open_accounts(services: Services, settings: Settings) -> AccountService:
    """The account store (accounts, sessions, tokens) over opened services, as the admin API and
    the CLI use it: run-time session and login-lock settings included."""
    # Loaded only when accounts are needed (argon2 and the account queries).
    from signalvault.control.accounts.service import AccountService

    return AccountService(
        services.store,
        services.trail,
        services.keyring.pepper,
        settings.accounts,
        live=services.runtime.accounts,
    )
