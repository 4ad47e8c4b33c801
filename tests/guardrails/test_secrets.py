"""Secrets detector: a valid example per format, built from parts at test time, and look-alikes."""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import string
import zlib

import pytest

from signalvault.guardrails.secrets import SECRET_TYPES, SecretsDetector
from signalvault.guardrails.secrets_catalogue import FORMATS

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
HEX = "0123456789abcdef"
B64 = B62 + "+/"
URLSAFE = B62 + "-_"
UPPER32 = string.ascii_uppercase + "234567"


def rnd(n: int, alphabet: str = B62, seed: int = 0) -> str:
    rng = random.Random(f"{n}:{alphabet}:{seed}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def b62(value: int, width: int = 6) -> str:
    out = ""
    while value:
        value, rem = divmod(value, 62)
        out = B62[rem] + out
    return out.rjust(width, "0")


def github(prefix: str = "ghp") -> str:
    body = rnd(30)
    return prefix + "_" + body + b62(zlib.crc32(body.encode()))


def signalvault_key(env: str = "live") -> str:
    head = "sv-" + env + "-" + rnd(43, seed=5)
    return head + b62(zlib.crc32(head.encode()))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt() -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": "42", "exp": 1900000000}).encode())
    return f"{header}.{payload}.{rnd(43, URLSAFE)}"


def pem(label: str = "RSA PRIVATE KEY", newline: str = "\n") -> str:
    lines = [rnd(64, B64, seed=i) for i in range(4)]
    return newline.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


AWS_ID = "AKIA" + rnd(16, UPPER32)
OPENAI_SIG = "T3Blbk" + "FJ"  # the base64 of "OpenAI" that OpenAI embeds in every key

# (kind, text, secret): `secret` must be covered by a finding of `kind`.
VALID = [
    ("OPENAI_API_KEY", None, "sk-proj-" + rnd(20) + OPENAI_SIG + rnd(20, seed=1)),
    ("OPENAI_API_KEY", None, "sk-" + rnd(20) + OPENAI_SIG + rnd(20, seed=2)),
    ("OPENAI_API_KEY", None, "sk-admin-" + rnd(58, URLSAFE) + OPENAI_SIG + rnd(58, URLSAFE, 3)),
    ("ANTHROPIC_API_KEY", None, "sk-ant-" + "api03-" + rnd(93, URLSAFE) + "AA"),
    ("ANTHROPIC_API_KEY", None, "sk-ant-" + "admin01-" + rnd(93, URLSAFE) + "AA"),
    ("AWS_ACCESS_KEY_ID", None, AWS_ID),
    ("AWS_SESSION_TOKEN", None, "FwoGZXIvYXdz" + rnd(200, B64)),
    ("AWS_BEDROCK_API_KEY", None, "ABSKQmVkcm9ja0FQSUtleS" + rnd(60, B64)),
    ("GOOGLE_API_KEY", None, "AIza" + rnd(35, URLSAFE)),
    ("GCP_CREDENTIAL", None, "ya29." + rnd(120, URLSAFE)),
    ("GCP_CREDENTIAL", None, "GOCSPX-" + rnd(28, URLSAFE)),
    ("AZURE_CREDENTIAL", "AccountName=acct;AccountKey={s};EndpointSuffix=x", rnd(86, B64) + "=="),
    ("AZURE_CREDENTIAL", "https://a.blob.core.windows.net/c?sv=2022-11-02&sig={s}", rnd(44, B64)),
    ("AZURE_CREDENTIAL", None, rnd(3, URLSAFE) + "8Q~" + rnd(34, URLSAFE)),
    ("GITHUB_TOKEN", None, github("ghp")),
    ("GITHUB_TOKEN", None, github("ghs")),
    ("GITHUB_TOKEN", None, "github_pat_" + rnd(22) + "_" + rnd(59, seed=1)),
    ("GITLAB_TOKEN", None, "glpat-" + rnd(20, URLSAFE)),
    (
        "SLACK_TOKEN",
        None,
        "xoxb-" + rnd(11, string.digits) + "-" + rnd(12, string.digits, 1) + "-" + rnd(24),
    ),
    (
        "SLACK_WEBHOOK_URL",
        None,
        "https://hooks.slack.com/services/T"
        + rnd(8, UPPER32)
        + "/B"
        + rnd(8, UPPER32, 1)
        + "/"
        + rnd(24),
    ),
    ("STRIPE_KEY", None, "sk_" + "live_" + rnd(24)),
    ("STRIPE_KEY", None, "rk_" + "test_" + rnd(24)),
    ("HUGGINGFACE_TOKEN", None, "hf_" + rnd(34)),
    ("API_KEY_OTHER", None, "SK" + rnd(32, HEX)),  # Twilio API key
    ("API_KEY_OTHER", None, "SG." + rnd(22, URLSAFE) + "." + rnd(43, URLSAFE, 1)),
    ("API_KEY_OTHER", None, "key-" + rnd(32, HEX)),  # Mailgun
    ("API_KEY_OTHER", None, "npm_" + rnd(36)),
    ("API_KEY_OTHER", None, "pypi-" + "AgEIcHlwaS5vcmc" + rnd(70, URLSAFE)),
    ("API_KEY_OTHER", None, "dapi" + rnd(32, HEX)),
    ("API_KEY_OTHER", None, "shpat_" + rnd(32, HEX)),
    ("API_KEY_OTHER", None, "sq0csp-" + rnd(43, URLSAFE)),
    ("API_KEY_OTHER", "DD_API_KEY={s}", rnd(32, HEX)),
    ("API_KEY_OTHER", None, "dop_v1_" + rnd(64, HEX)),
    ("API_KEY_OTHER", None, "HRKU-" + rnd(60, URLSAFE)),
    ("API_KEY_OTHER", None, "lin_api_" + rnd(40)),
    ("API_KEY_OTHER", None, "ntn_" + rnd(11, string.digits) + rnd(35)),
    ("API_KEY_OTHER", None, "PMAK-" + rnd(24, HEX) + "-" + rnd(34, HEX, 1)),
    ("API_KEY_OTHER", None, "glsa_" + rnd(32) + "_" + rnd(8, HEX)),
    ("API_KEY_OTHER", None, "sntryu_" + rnd(64, HEX)),
    ("API_KEY_OTHER", None, "dp.pt." + rnd(43)),
    ("API_KEY_OTHER", None, "hvs." + rnd(90, URLSAFE)),
    ("API_KEY_OTHER", None, rnd(14) + ".atlasv1." + rnd(67, URLSAFE)),
    (
        "API_KEY_OTHER",
        None,
        "https://discord.com/api/webhooks/" + rnd(18, string.digits) + "/" + rnd(68, URLSAFE),
    ),
    ("API_KEY_OTHER", None, rnd(10, string.digits) + ":AA" + rnd(33, URLSAFE)),  # Telegram bot
    ("API_KEY_OTHER", None, rnd(32, HEX) + "-us21"),  # Mailchimp
    ("API_KEY_OTHER", None, "gsk_" + rnd(52)),
    ("API_KEY_OTHER", None, "r8_" + rnd(37)),
    ("API_KEY_OTHER", None, "ATATT3xFfGF0" + rnd(180, URLSAFE)),
    ("PRIVATE_KEY", None, pem()),
    ("PRIVATE_KEY", None, pem("OPENSSH PRIVATE KEY")),
    ("JWT", None, jwt()),
    ("CONNECTION_STRING", None, "postgres://app:" + rnd(14) + "@db.internal:5432/app"),
    ("PASSWORD", "Server=db;Database=app;User Id=sa;Password={s};", rnd(14)),
    ("GENERIC_SECRET", "api_secret: {s}", rnd(32)),
    ("GENERIC_SECRET", 'const apiMaticKey := "{s}"', rnd(40, URLSAFE)),
    ("SIGNALVAULT_KEY", None, signalvault_key()),
]


@pytest.mark.parametrize(("kind", "template", "secret"), VALID)
def test_finds_each_format(kind, template, secret):
    text = (template or "config value: {s} (rotate monthly)").format(s=secret)
    start = text.index(secret)
    found = SecretsDetector()(text)
    assert any(f.kind == kind and f.start < start + len(secret) and start < f.end for f in found), (
        found
    )
    assert all(f.detector == "secrets" and 0 <= f.score <= 1 for f in found)


def test_catalogue_is_large_and_uses_canonical_kinds():
    assert len(FORMATS) >= 60
    assert {f.kind for f in FORMATS} <= SECRET_TYPES
    assert {"AWS_SECRET_ACCESS_KEY", "GENERIC_SECRET", "SIGNALVAULT_KEY"} <= SECRET_TYPES


def test_pairs_aws_secret_key_with_its_access_key_id_across_lines():
    secret = rnd(40, B64, seed=9)
    text = f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {secret}\n"
    kinds = {(f.kind, text[f.start : f.end]) for f in SecretsDetector()(text)}
    assert ("AWS_ACCESS_KEY_ID", AWS_ID) in kinds
    assert ("AWS_SECRET_ACCESS_KEY", secret) in kinds


def test_pairs_session_token_with_a_temporary_key_id():
    key_id, secret, session = "ASIA" + rnd(16, UPPER32), rnd(40, B64, 14), rnd(300, B64, 15)
    text = f"id: {key_id}\nsecret: {secret}\nsession: {session}\n"
    kinds = {f.kind for f in SecretsDetector()(text)}
    assert kinds == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


def test_aws_secret_shape_alone_is_not_reported():
    assert SecretsDetector()(f"checksum {rnd(40, B64, seed=3)} of the build") == []


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"openai_api_key": "sk-proj-" + rnd(20) + OPENAI_SIG + rnd(20, seed=4)}),
        json.dumps({"type": "service_account", "private_key": pem("PRIVATE KEY") + "\n"}),
        "database:\n  password:\n    " + rnd(18, seed=6) + "\n",
        "key = '''\n" + pem("EC PRIVATE KEY") + "\n'''",
    ],
)
def test_finds_secrets_inside_json_and_across_lines(text):
    assert SecretsDetector()(text)


def test_service_account_json_reports_credential_and_key_block():
    text = json.dumps({"type": "service_account", "private_key": pem("PRIVATE KEY")}, indent=1)
    kinds = {f.kind for f in SecretsDetector()(text)}
    assert {"GCP_CREDENTIAL", "PRIVATE_KEY"} <= kinds


def _bad_github() -> str:
    token = github()
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def _bad_signalvault() -> str:
    key = signalvault_key()
    return key[:-1] + ("A" if key[-1] != "A" else "B")


LOOK_ALIKES = [
    ("wrong GitHub checksum", "token " + _bad_github()),
    ("wrong SignalVault checksum", "use " + _bad_signalvault()),
    ("UUID", "request id 123e4567-e89b-12d3-a456-426614174000 failed"),
    ("git SHA", "commit 3f2a9c1b7e5d4a8f9b6c3e2a1d0f9e8d7c6b5a49 fixed the token refresh"),
    ("sha256 digest", "image digest sha256:" + rnd(64, HEX) + " pulled"),
    ("lockfile", '"integrity": "sha512-' + rnd(86, B64) + '=="'),
    ("version", "upgrade to version 1.24.3-rc.1 of the auth library"),
    ("placeholder sk-xxxx", "OPENAI_API_KEY=sk-" + "x" * 48),
    ("placeholder text", "OPENAI_API_KEY=your-api-key-here"),
    ("AWS example id", "aws_access_key_id = " + "AKIA" + "IOSFODNN7" + "EXAMPLE"),
    (
        "AWS example secret",
        "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCY" + "EXAMPLEKEY",
    ),
    (
        "JWT-shaped, header not JSON",
        "eyJ" + rnd(30, URLSAFE) + "." + rnd(30, URLSAFE) + "." + rnd(20),
    ),
    ("templated password", "postgres://app:${DB_PASSWORD}@db.internal/app"),
    ("no password in URL", "see https://example.com/docs and postgres://localhost:5432/app"),
    ("prose", "The key point is that tokens are counted per request, not per password."),
    ("empty PEM", "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----"),
    ("sk inside a word", "task-" + rnd(20) + "T3Blbk" + "FJ" + rnd(20)),
    ("model name after 'tokens'", "max tokens for gpt-4o-2024-08-06 is 16384"),
    ("identifier after 'key'", "private_key = Ed448PrivateKey.generate()"),
    ("CamelCase after 'credentials'", "from .credentials import CredentialsWithRawResponse"),
    ("keyword argument", "return BasicAuth(username=username, password=password)"),
    ("identifier with a vendor prefix", "record with vcr_cassetteRecordingForIntegrationTests"),
    ("documentation credentials", "create_engine('postgresql://scott:tiger@localhost/test')"),
]


@pytest.mark.parametrize(("label", "text"), LOOK_ALIKES, ids=[c[0] for c in LOOK_ALIKES])
def test_ignores_look_alikes(label, text):
    assert SecretsDetector()(text) == [], label


def test_offsets_hold_when_lower_casing_changes_length():
    """ "İ" lower-cases to two characters; keyword offsets must still point into the original."""
    secret = rnd(24, seed=11)
    text = "İstanbul office PASSWORD=" + secret
    (finding,) = SecretsDetector()(text)
    assert text[finding.start : finding.end] == secret


def test_documentation_credentials_score_below_the_default_threshold():
    text = "engine = create_engine('mysql://user:pass@db/app')"
    (finding,) = SecretsDetector(threshold=0.4)(text)
    assert finding.kind == "CONNECTION_STRING" and finding.score < 0.5


def test_types_limit_what_is_reported():
    text = f"{jwt()} and {github()}"
    assert {f.kind for f in SecretsDetector(types={"JWT"})(text)} == {"JWT"}


def test_generic_only_and_aws_secret_only_detectors_work():
    value = rnd(24, seed=12)
    assert [f.kind for f in SecretsDetector(types={"GENERIC_SECRET"})(f"token: {value}")] == [
        "GENERIC_SECRET"
    ]
    secret = rnd(40, B64, seed=13)
    found = SecretsDetector(types={"AWS_SECRET_ACCESS_KEY"})(f"id {AWS_ID}\nsecret {secret}")
    assert [f.kind for f in found] == ["AWS_SECRET_ACCESS_KEY"]


def test_unknown_type_is_rejected():
    with pytest.raises(ValueError, match="NOT_A_TYPE"):
        SecretsDetector(types={"NOT_A_TYPE"})


def test_allow_list_suppresses_matching_values():
    token = github()
    assert SecretsDetector(allow=[re.escape(token)])(f"token {token}") == []
    assert SecretsDetector(allow=[r"ghp_.*"])(f"token {token}") == []
    secret = "+" + rnd(30, seed=17)  # "+..." is no valid regex: matched literally
    text = f"aws_access_key_id={AWS_ID} api_secret: {secret}"
    assert {f.kind for f in SecretsDetector()(text)} == {"AWS_ACCESS_KEY_ID", "GENERIC_SECRET"}
    assert {f.kind for f in SecretsDetector(allow=[secret, AWS_ID])(text)} == set()


def test_threshold_drops_weaker_findings():
    text = "api_secret: " + rnd(32, seed=8)
    assert SecretsDetector()(text)
    assert SecretsDetector(threshold=0.8)(text) == []


def test_findings_are_sorted_and_do_not_overlap():
    text = " ".join(secret for _, template, secret in VALID if template is None)
    found = SecretsDetector()(text)
    assert len(found) >= 40
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


PASSWORD_VALUE = "Tr0ub4dor&" + rnd(6, seed=11)
TOKEN_VALUE = rnd(32, seed=12)
# Every style code and config write an assignment in; the value must be found and reported.
ASSIGNED = [
    'db_password = "{p}"',
    "DB_PASSWORD={p}",
    "password: {p}",
    "password: '{p}'",
    '{{"password": "{p}", "host": "db"}}',
    "<password>{p}</password>",
    '<add key="DbPassword" value="{p}" />',
    "[mysql]\nuser = app\npassword = {p}",
    "'password' => '{p}',",
    'password := "{p}"',
    'props.setProperty("password", "{p}");',
    'export DB_PASS="{p}"',
    "mysqldump --password={p} orders",
    "./deploy.sh --password {p} --region eu",
    "$env:DB_PASSWORD = '{p}'",
    "Server=db;User Id=app;Password={p};",
    "my password is {p} for the staging box",
    'config = {{"api_key": "{t}"}}',
    "API_TOKEN={t}",
    "client_secret: {t}",
    "curl -H 'Authorization: Bearer {t}' https://api.internal",
    "const apiKey = '{t}';",
]


@pytest.mark.parametrize("template", ASSIGNED)
def test_reports_values_assigned_to_credential_names(template):
    text = template.format(p=PASSWORD_VALUE, t=TOKEN_VALUE)
    value = PASSWORD_VALUE if "{p}" in template else TOKEN_VALUE
    start = text.index(value)
    found = SecretsDetector()(text)
    assert any(f.start <= start and start + len(value) <= f.end for f in found), found


# Near misses: a reference, placeholder, mask, type, sample or stored hash is not a secret.
NEAR_MISSES = [
    "password = os.environ['DB_PASSWORD']",
    "DB_PASSWORD=${DB_PASSWORD}",
    "password: ${{ secrets.DB_PASSWORD }}",
    "const token = process.env.API_TOKEN;",
    'password := os.Getenv("DB_PASSWORD")',
    "password: {{ .Values.db.password }}",
    "<password>${DB_PASSWORD}</password>",
    "password = settings.DATABASE_PASSWORD",
    "password = getpass.getpass()",
    "password: !vault secret/data/app#password",
    "DB_PASSWORD=%DB_PASSWORD%",
    "password = '<your-password>'",
    "API_KEY=YOUR_API_KEY",
    "password: changeme",
    "password = '********'",
    "api_key: xxxxxxxxxxxxxxxxxxxx",
    "password = None",
    "def connect(password: str | None = None) -> None:",
    "token_expiry = 3600",
    "password_min_length = 12",
    "max_tokens: 4096",
    "password_hash = '$2b$12$" + rnd(53, B62 + "./", seed=13) + "'",
    "hash: $argon2id$v=19$m=65536,t=3,p=4$" + rnd(22, seed=14) + "$" + rnd(43, seed=15),
    "if not password:\n    raise ValueError('password is required')",
    "the password is incorrect, please try again",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_miss_assignments_are_not_reported(text):
    assert SecretsDetector()(text) == []
