"""Held-out secrets for bench/heldout.py: values assigned to credential keywords in the styles of
code, config files and command lines, and near-miss negatives in the same styles.
"""

from __future__ import annotations

import random
import string
from typing import Any

_SEEDS = {"tune": 2027, "untouched": 4099}
_KEYS = ["password", "db_password", "DB_PASS", "passwd", "pwd", "secret", "client_secret",
         "api_key", "apiKey", "API_TOKEN", "auth_token", "access_token", "secret_key",
         "SMTP_PASSWORD", "token", "adminPassword", "APP_SECRET"]  # fmt: skip

# {k}: key as written, {v}: value. Quoted styles keep the value inside quotes.
_STYLES = {
    "tune": [
        '{k} = "{v}"',
        "{K}={v}",
        "{k}: {v}",
        '{{"{k}": "{v}", "host": "db.internal"}}',
        "./deploy.sh --{k} {v} --region eu-west-1",
        "Server=db01;Database=app;User Id=app;Password={v};",
        '{k} := "{v}"',
        "Here is my config, why does it fail?\n{k}: '{v}'\nport: 5432",
    ],
    "untouched": [
        "const {k} = '{v}';",
        "<{k}>{v}</{k}>",
        '<add key="{k}" value="{v}" />',
        "[database]\nhost = db.internal\n{k} = {v}",
        "'{k}' => '{v}',",
        'export {K}="{v}"',
        "docker run -e {K}={v} -p 8080:8080 myapp",
        "helm upgrade app ./chart --set auth.{k}={v}",
        'options.{k} = "{v}";',
        "postgres://app:{v}@db.internal:5432/orders",
        "curl -H 'Authorization: Bearer {v}' https://api.internal/v1/items",
        "$env:{K} = '{v}'",
        "the {k} is {v}, can you log in and check?",
    ],
}
# Unquoted expressions that read a secret from elsewhere: placed as code, never quoted.
_REFERENCES = {
    "tune": [
        "{k} = os.environ['{K}']",
        "{K}=${{{K}}}",
        "{k}: ${{{K}}}",
        "{k} = settings.{k}",
        "{k}: {{{{ .Values.{k} }}}}",
        '{k} = getpass.getpass("Password: ")',
    ],
    "untouched": [
        "const {k} = process.env.{K};",
        '{k} := os.Getenv("{K}")',
        "{k} = ENV.fetch('{K}')",
        "<{k}>${{{K}}}</{k}>",
        "{k}: !vault secret/data/app#{k}",
        '{k} = System.getenv("{K}");',
        "{K}=%{K}%",
        "def connect({k}: str | None = None) -> None:",
        "{k}_min_length = 12",
        "if not {k}:\n    raise ValueError('{k} is required')",
    ],
}
_PLACEHOLDERS = {
    "tune": ["<password>", "YOUR_API_KEY", "changeme", "xxxxxxxxxxxxxxxx", "********", "",
             "REPLACE_ME", "your-secret-here", "example"],
    "untouched": ["<your-token>", "INSERT_KEY_HERE", "***************", "dummy", "null",
                  "<redacted>", "TODO", "your_password_here", "placeholder", "xxxx-xxxx-xxxx",
                  "sk-...", "...", "none"],
}  # fmt: skip


def _random_token(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(16, 41)))


def _random_password(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "!#%&*+-_.?"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(10, 21)))


_WORDS = ["Summer", "Winter", "Dragon", "Monkey", "Sunshine", "Falcon", "Harbor", "Maple",
          "Tiger", "Coffee", "Rocket", "Silver", "Orange", "Castle", "Purple"]  # fmt: skip


def _human_password(rng: random.Random) -> str:
    word = rng.choice(_WORDS)
    if rng.random() < 0.5:
        word = word.replace("o", "0").replace("a", "@")
    return word + str(rng.randrange(10, 9999)) + rng.choice("!#$%&*?")


def _hash(rng: random.Random) -> str:
    """Password hashes of known formats: stored digests, not the secret itself."""
    b64 = string.ascii_letters + string.digits + "./"
    body = "".join(rng.choice(b64) for _ in range(53))
    return rng.choice(
        [
            f"$2b$12${body}",
            f"$2y$10${body}",
            "$argon2id$v=19$m=65536,t=3,p=4$" + body[:22] + "$" + body[22:],
        ]
    )


def _style_key(key: str) -> tuple[str, str]:
    return key, key.upper()


def secret_records(split: str, count: int = 240) -> list[dict[str, Any]]:
    rng = random.Random(_SEEDS[split])
    out: list[dict[str, Any]] = []
    makers = [_random_token, _random_password, _human_password]
    for i in range(count):
        key, upper = _style_key(rng.choice(_KEYS))
        style = rng.choice(_STYLES[split])
        value = rng.choice(makers)(rng)
        if "'" in style:
            value = value.replace("'", "")
        text = style.format(k=key, K=upper, v=value)
        start = text.index(value, text.index(key) if key in text else 0) if value in text else -1
        kind = "PASSWORD" if "pass" in key.lower() or "pwd" in key.lower() else "GENERIC_SECRET"
        if "Password={v}" in style:
            kind = "PASSWORD"
        if "postgres://" in style:
            kind = "CONNECTION_STRING"
        secrets = [{"start": start, "end": start + len(value), "type": kind}]
        out.append(
            {
                "id": f"secret-{split}-{i}",
                "text": text,
                "secrets": secrets,
                "source": "signalvault bench/heldout_secrets.py",
                "meta": {},
            }
        )
    for i in range(count):
        key, upper = _style_key(rng.choice(_KEYS))
        roll = rng.random()
        if roll < 0.45:
            text = rng.choice(_REFERENCES[split]).format(k=key, K=upper)
        elif roll < 0.85:
            value = rng.choice(_PLACEHOLDERS[split])
            text = rng.choice(_STYLES[split]).format(k=key, K=upper, v=value)
        else:
            text = rng.choice(_STYLES[split]).format(
                k=key + "_hash", K=upper + "_HASH", v=_hash(rng)
            )
        out.append(
            {
                "id": f"nearmiss-{split}-{i}",
                "text": text,
                "secrets": [],
                "source": "signalvault bench/heldout_secrets.py",
                "meta": {},
            }
        )
    return out
