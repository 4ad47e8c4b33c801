"""`signalvault demo`: mock provider + gateway on the embedded store, sample traffic through the
official SDKs, and a table of what the audit trail recorded. No API key or network needed."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import click

from signalvault.app import create_app
from signalvault.config import ProviderSettings, Secret, Settings, StoreSettings
from signalvault.console import format_table
from signalvault.control.services import open_services
from signalvault.errors import ConfigError
from signalvault.server import BackgroundServer
from signalvault.store import RecordFilter
from signalvault.trail.record_json import record_json

DEMO_DATA_DIR = Path(".signalvault-demo")
COLUMNS = [
    "time",
    "api",
    "model_requested",
    "end_user",
    "stream",
    "status_code",
    "outcome",
    "guardrails",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
]


def demo_settings(mock_port: int, data_dir: Path = DEMO_DATA_DIR) -> Settings:
    base_url = f"http://127.0.0.1:{mock_port}/v1"
    return Settings(
        store=StoreSettings(data_dir=data_dir),
        providers=(
            ProviderSettings(
                name="mock-openai",
                kind="openai",
                base_url=base_url,
                models=("gpt-*", "o*", "text-embedding-*"),
                api_key=Secret("mock-key"),
            ),
            ProviderSettings(
                name="mock-anthropic",
                kind="anthropic",
                base_url=base_url,
                models=("claude-*",),
                api_key=Secret("mock-key"),
            ),
        ),
    )


def run_demo(port: int, wait: bool, data_dir: Path = DEMO_DATA_DIR) -> None:
    try:
        import anthropic
        import openai
    except ImportError:
        raise ConfigError("the demo needs the SDKs: pip install 'signalvault[demo]'") from None
    from signalvault.mock_provider import MockProvider

    mock = BackgroundServer(MockProvider()).start()
    settings = demo_settings(mock.port, data_dir)
    services = open_services(settings)
    _, secret = services.keyring.create(name="demo", environment="dev", created_by="demo")
    services.store.close()
    app = create_app(settings)
    gateway = BackgroundServer(app, port=port).start()
    started = time.time()
    try:
        base = f"http://127.0.0.1:{gateway.port}"
        oai = openai.OpenAI(base_url=base + "/v1", api_key=secret, max_retries=0)
        ant = anthropic.Anthropic(base_url=base, api_key=secret, max_retries=0)
        click.echo("Sending sample traffic through the official SDKs...")
        oai.chat.completions.create(
            model="gpt-4o-mini",
            user="user-alice",
            messages=[{"role": "user", "content": "Hello, gateway!"}],
        )
        for _ in oai.chat.completions.create(
            model="gpt-4o-mini",
            stream=True,
            messages=[{"role": "user", "content": "Stream, please."}],
            extra_headers={"X-SignalVault-User": "bob"},
        ):
            pass
        oai.embeddings.create(model="text-embedding-3-small", input=["embed me"])
        ant.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "Hi from Anthropic's SDK"}],
        )
        with ant.messages.stream(
            model="claude-sonnet-5-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "Stream from Anthropic"}],
        ) as stream:
            for _ in stream.text_stream:
                pass
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Email the summary to jane.doe@example.com"}],
        )
        with contextlib.suppress(openai.BadRequestError):
            oai.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "user", "content": "Use key AKIA" + "Q3VZ7TXK2MBN4PLD to deploy"}
                ],
            )
        intruder = openai.OpenAI(base_url=base + "/v1", api_key="sv-dev-not-a-key", max_retries=0)
        with contextlib.suppress(openai.AuthenticationError):
            intruder.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        assert app.services is not None
        app.services.store.flush()  # outcome updates are queued just after each response
        _summary(settings, started)
        click.echo(f"\nGateway: {base}/v1  (OpenAI SDK base_url; Anthropic SDK base_url={base})")
        click.echo(f"Demo key: {secret}")
        click.echo(
            f"Audit store: {data_dir}/ (see `SIGNALVAULT_DATA_DIR={data_dir} signalvault logs`)"
        )
        if wait:
            click.echo("Serving until Ctrl-C...")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        gateway.stop()
        mock.stop()


def _summary(settings: Settings, since: float) -> None:
    services = open_services(settings)
    try:
        rows = services.store.list_records(RecordFilter(since=since), limit=50)
    finally:
        services.store.close()
    click.echo("\nWhat the audit trail recorded (content is stored encrypted, not shown):\n")
    click.echo(format_table([_row(record_json(r)) for r in reversed(rows)], COLUMNS))


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its guardrail results condensed to what fired, e.g. `redacted:EMAIL`."""
    fired = [
        f"{e['outcome']}:{'+'.join(sorted(e['kinds']))}"
        for e in record["guardrails"]
        if e["outcome"] not in ("pass",)
    ]
    return {**record, "guardrails": " ".join(fired) or "-"}
