"""The credential format table: one row per vendor format, from each vendor's documented shape.

Rows are data (kind, regex, validator, score); `secrets.py` compiles them. Imports secrets_checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from signalvault.guardrails import secrets_checks as chk


@dataclass(frozen=True, slots=True)
class SecretFormat:
    """A credential format; the named group `s`, if present, is the secret, else the whole match."""

    name: str
    kind: str
    regex: str
    check: Callable[[str], bool] | None = None
    score: float = 0.9
    # Documentation samples (`user:pass@`) are still reported, but below the default threshold.
    is_sample: Callable[[str], bool] | None = None
    # False for formats that start with a keyword or URL, which may follow any character.
    is_bounded: bool = True
    # The span starts at the URL scheme before "://", found by scanning back in code.
    has_scheme: bool = False


# Boundaries: a token must not be the middle of a longer token, or "sk-..." would fire inside
# "task-...". The right edge is in the regex; the left edge is checked in code (`is_bounded`),
# because a leading look-behind stops `re` from searching for the literal prefix quickly.
_R = r"(?![A-Za-z0-9_\-])"
_B64 = r"A-Za-z0-9+/"


def _fixed(prefix: str, body: str) -> str:
    return prefix + body + _R


def _near(keywords: str, token: str) -> str:
    """A token shortly after a vendor keyword (`DATADOG_API_KEY = "..."`, `cohere key: ...`)."""
    return (
        rf"(?i:{keywords})[A-Za-z0-9_.\-]{{0,24}}(?:[ \t\"':=>,{{(\[]|\\\"){{1,8}}"
        rf"(?:[A-Za-z_]{{1,12}}[ \t\"':=]{{1,4}})?(?P<s>{token}){_R}"
    )


_API = "API_KEY_OTHER"
_AZ = "AZURE_CREDENTIAL"
_rand = chk.is_random_token
_hex = chk.is_random_hex

FORMATS: tuple[SecretFormat, ...] = (
    # LLM vendors.
    SecretFormat(
        "openai",
        "OPENAI_API_KEY",
        r"sk-(?:[a-z]+-)*[A-Za-z0-9_\-]{10,}T3BlbkFJ[A-Za-z0-9_\-]{20,}" + _R,
        _rand,
        0.97,
    ),
    SecretFormat(
        "anthropic",
        "ANTHROPIC_API_KEY",
        _fixed(r"sk-ant-[a-z]{3,5}\d{2}-", r"[A-Za-z0-9_\-]{78,110}AA"),
    ),
    SecretFormat("openrouter", _API, _fixed(r"sk-or-v1-", r"[a-f0-9]{64}")),
    SecretFormat("groq", _API, _fixed("gsk_", r"[A-Za-z0-9]{48,56}"), _rand),
    SecretFormat("replicate", _API, _fixed("r8_", r"[A-Za-z0-9]{37}"), _rand),
    SecretFormat("xai", _API, _fixed("xai-", r"[A-Za-z0-9]{70,90}"), _rand),
    SecretFormat("perplexity", _API, _fixed("pplx-", r"[A-Za-z0-9]{40,56}"), _rand),
    SecretFormat("langsmith", _API, _fixed(r"lsv2_(?:pt|sk)_", r"[a-f0-9]{32}_[a-f0-9]{10}")),
    SecretFormat("pinecone", _API, _fixed("pcsk_", r"[A-Za-z0-9]{5,6}_[A-Za-z0-9]{60,66}"), _rand),
    SecretFormat("huggingface", "HUGGINGFACE_TOKEN", _fixed("hf_", r"[A-Za-z0-9]{34,40}"), _rand),
    SecretFormat(
        "huggingface-org", "HUGGINGFACE_TOKEN", _fixed("api_org_", r"[A-Za-z]{34}"), _rand
    ),
    SecretFormat("mistral", _API, _near("mistral", r"[A-Za-z0-9]{32}"), _rand, 0.75),
    SecretFormat("cohere", _API, _near("cohere|co_api", r"[A-Za-z0-9]{40}"), _rand, 0.75),
    SecretFormat(
        "langfuse", _API, _fixed("sk-lf-", r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}"), _rand
    ),
    SecretFormat("deepseek", _API, _near("deepseek", r"sk-[a-f0-9]{32}"), _hex, 0.8),
    # AWS (the secret access key is found by pairing, see secrets.py).
    SecretFormat(
        "aws-access-key-id",
        "AWS_ACCESS_KEY_ID",
        r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}" + _R,
        lambda v: not chk.is_placeholder(v),
    ),
    SecretFormat(
        "aws-session-token",
        "AWS_SESSION_TOKEN",
        rf"(?:FwoGZXIvYXdz|IQoJb3JpZ2lu|FQoGZXIvYXdz)[{_B64}]{{80,}}={{0,2}}",
    ),
    SecretFormat(
        "aws-bedrock",
        "AWS_BEDROCK_API_KEY",
        rf"(?:ABSKQmVkcm9ja0FQSUtleS|bedrock-api-key-)[{_B64}=%\-]{{40,}}",
    ),
    SecretFormat("aws-appsync", _API, _fixed("da2-", r"[a-z0-9]{26}"), _rand, 0.8),
    # Google / GCP.
    SecretFormat("google-api-key", "GOOGLE_API_KEY", _fixed("AIza", r"[A-Za-z0-9_\-]{35}"), _rand),
    # A key file, not a mention of the type: the private key or its id must follow.
    SecretFormat(
        "gcp-service-account",
        "GCP_CREDENTIAL",
        r"\"type\"\s*:\s*\"service_account\"(?=[\s\S]{0,400}\"private_key)",
        None,
        0.9,
    ),
    SecretFormat(
        "gcp-private-key-id", "GCP_CREDENTIAL", r"\"private_key_id\"\s*:\s*\"(?P<s>[a-f0-9]{40})\""
    ),
    SecretFormat("gcp-oauth-token", "GCP_CREDENTIAL", r"ya29\.[A-Za-z0-9_\-]{30,}", _rand),
    SecretFormat(
        "gcp-oauth-secret", "GCP_CREDENTIAL", _fixed("GOCSPX-", r"[A-Za-z0-9_\-]{28}"), _rand
    ),
    # Azure.
    SecretFormat(
        "azure-storage",
        _AZ,
        rf"(?i:AccountKey|SharedAccessKey)=(?P<s>[{_B64}]{{40,88}}={{0,2}})",
        _rand,
        0.95,
    ),
    SecretFormat("azure-sas", _AZ, rf"[?&]sig=(?P<s>[{_B64}%]{{40,100}})", _rand, 0.85),
    SecretFormat(
        "azure-app-config",
        _AZ,
        r"Endpoint=https://[A-Za-z0-9.\-]+\.azconfig\.io;Id=[^;\s]+;Secret=(?P<s>[A-Za-z0-9+/=]{20,})",
    ),
    SecretFormat(
        "azure-client-secret", _AZ, _fixed("", r"[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}")
    ),
    SecretFormat(
        "azure-key-near-keyword",
        _AZ,
        _near(r"azure|openai_api_key|api-key|subscription[_-]?key|apim", r"[a-f0-9]{32}"),
        _hex,
        0.75,
    ),
    # Source hosting and CI.
    SecretFormat(
        "github",
        "GITHUB_TOKEN",
        _fixed("gh[pousr]_", r"[A-Za-z0-9]{36}"),
        chk.is_github_token,
        0.99,
    ),
    SecretFormat("github-long", "GITHUB_TOKEN", _fixed("gh[su]_", r"[A-Za-z0-9_]{80,}"), _rand),
    SecretFormat(
        "github-fine-grained",
        "GITHUB_TOKEN",
        _fixed("github_pat_", r"[A-Za-z0-9]{22}_[A-Za-z0-9]{59}"),
        _rand,
    ),
    SecretFormat(
        "gitlab",
        "GITLAB_TOKEN",
        r"(?:glpat|gldt|glrt|glcbt|glptt|glsoat|glffct|gloas|glimt|glagent|glft|glwt)-"
        + r"[A-Za-z0-9_\-]{20,}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9})?"
        + _R,
        _rand,
    ),
    SecretFormat(
        "gitlab-runner-registration", "GITLAB_TOKEN", _fixed("GR1348941", r"[A-Za-z0-9_\-]{20}")
    ),
    SecretFormat("bitbucket-app-password", _API, _fixed("ATBB", r"[A-Za-z0-9_=.\-]{28,}"), _rand),
    SecretFormat("bitbucket-dc", _API, r"BBDC-[A-Za-z0-9+/@_\-]{40,}", _rand),
    SecretFormat("atlassian", _API, r"AT(?:ATT|CTT)3xFfG[A-Za-z0-9_=\-]{100,}", None, 0.95),
    SecretFormat("npm", _API, _fixed("npm_", r"[A-Za-z0-9]{36}"), _rand),
    SecretFormat("pypi", _API, r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,}"),
    SecretFormat("rubygems", _API, _fixed("rubygems_", r"[a-f0-9]{48}")),
    SecretFormat("docker-hub", _API, _fixed(r"dckr_(?:pat|oat)_", r"[A-Za-z0-9_\-]{27,}"), _rand),
    SecretFormat("circleci", _API, _fixed("CCIPAT_", r"[A-Za-z0-9]{22}_[a-f0-9]{40}")),
    SecretFormat("buildkite", _API, _fixed("bkua_", r"[a-f0-9]{40}")),
    SecretFormat("jfrog", _API, _fixed("AKCp", r"[A-Za-z0-9]{69}"), _rand),
    SecretFormat("pulumi", _API, _fixed("pul-", r"[a-f0-9]{40}")),
    SecretFormat("terraform", _API, r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=\-]{60,70}" + _R),
    # Chat and messaging.
    SecretFormat(
        "slack",
        "SLACK_TOKEN",
        r"xox[abposre]-(?:\d+-)+[A-Za-z0-9\-]{6,}" + _R,
        lambda v: not chk.is_placeholder(v),
    ),
    SecretFormat("slack-app", "SLACK_TOKEN", r"xapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{32,}"),
    SecretFormat("slack-config", "SLACK_TOKEN", r"xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{100,}"),
    SecretFormat(
        "slack-webhook",
        "SLACK_WEBHOOK_URL",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+]{20,}",
    ),
    SecretFormat(
        "discord-webhook",
        _API,
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]{60,}",
    ),
    SecretFormat(
        "discord-bot",
        _API,
        _fixed("", r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}"),
        _rand,
    ),
    SecretFormat(
        "teams-webhook",
        _API,
        r"https://[A-Za-z0-9\-]+\.webhook\.office\.com/webhookb2/[^\s\"'<>]{20,}/IncomingWebhook/"
        r"[A-Za-z0-9]{20,}/[A-Za-z0-9\-]{10,}",
    ),
    SecretFormat("telegram-bot", _API, r"\d{8,10}:AA[A-Za-z0-9_\-]{33}" + _R),
    SecretFormat("twilio-api-key", _API, _fixed("SK", r"[0-9a-f]{32}"), _hex, 0.8),
    SecretFormat(
        "twilio-auth-token", _API, _near("twilio|auth_?token", r"[a-f0-9]{32}"), _hex, 0.75
    ),
    SecretFormat("sendgrid", _API, r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _R),
    SecretFormat("mailgun", _API, _fixed("key-", r"[a-f0-9]{32}"), _hex),
    SecretFormat(
        "mailgun-private", _API, _fixed("", r"[a-f0-9]{32}-[a-f0-9]{8}-[a-f0-9]{8}"), _hex
    ),
    SecretFormat("mailchimp", _API, _fixed("", r"[a-f0-9]{32}-us\d{1,2}"), _hex),
    # Payments and commerce.
    SecretFormat(
        "stripe", "STRIPE_KEY", _fixed(r"(?:sk|rk)_(?:live|test)_", r"[A-Za-z0-9]{20,247}"), _rand
    ),
    SecretFormat("stripe-webhook", "STRIPE_KEY", _fixed("whsec_", r"[A-Za-z0-9]{32,}"), _rand),
    SecretFormat("meta-access-token", _API, _fixed("EAA", r"[B-Z][A-Za-z0-9]{80,300}"), _rand),
    SecretFormat(
        "plaid", _API, _fixed(r"access-(?:sandbox|development|production)-", r"[0-9a-f\-]{36}")
    ),
    SecretFormat("square-access", _API, _fixed("EAAA", r"[A-Za-z0-9_\-]{60}"), _rand),
    SecretFormat("square-oauth", _API, _fixed(r"sq0(?:atp|csp)-", r"[A-Za-z0-9_\-]{22,43}"), _rand),
    SecretFormat("shopify", _API, _fixed(r"shp(?:at|ss|ca|pa)_", r"[a-fA-F0-9]{32}")),
    SecretFormat("shippo", _API, _fixed(r"shippo_(?:live|test)_", r"[a-f0-9]{40}")),
    SecretFormat("duffel", _API, _fixed(r"duffel_(?:live|test)_", r"[A-Za-z0-9_=\-]{43}")),
    SecretFormat("easypost", _API, _fixed("EZ[AT]K", r"[A-Za-z0-9]{54}"), _rand),
    SecretFormat("flutterwave", _API, r"FLWSECK(?:_TEST)?-[a-f0-9]{32}-X" + _R),
    # Cloud, hosting and observability.
    SecretFormat("databricks", _API, _fixed("dapi", r"[a-f0-9]{32}(?:-\d)?"), _hex),
    SecretFormat("digitalocean", _API, _fixed(r"do[opr]_v1_", r"[a-f0-9]{64}")),
    SecretFormat("heroku", _API, _fixed("HRKU-", r"[A-Za-z0-9_\-]{60}"), _rand),
    SecretFormat(
        "heroku-legacy",
        _API,
        _near("heroku", r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        None,
        0.7,
    ),
    SecretFormat("vercel", _API, _fixed(r"vc[pikar]_", r"[A-Za-z0-9]{24,}"), _rand),
    SecretFormat("vercel-legacy", _API, _near("vercel", r"[A-Za-z0-9]{24}"), _rand, 0.75),
    SecretFormat("netlify", _API, _fixed("nfp_", r"[A-Za-z0-9]{36}"), _rand),
    SecretFormat("fly", _API, r"(?:FlyV1 )?fm[12][ar]?_[A-Za-z0-9+/=_,\-]{100,}"),
    SecretFormat("supabase", _API, _fixed(r"(?:sbp_|sb_secret_)", r"[A-Za-z0-9_\-]{31,}"), _rand),
    SecretFormat(
        "planetscale", _API, _fixed(r"pscale_(?:tkn|pw|oauth)_", r"[A-Za-z0-9_.=\-]{32,64}"), _rand
    ),
    SecretFormat("cloudflare-ca", _API, _fixed(r"v1\.0-", r"[a-f0-9]{24}-[a-f0-9]{146}")),
    SecretFormat(
        "cloudflare",
        _API,
        _near(r"cloudflare|cf_api|cf-", r"[A-Za-z0-9_\-]{40}|[a-f0-9]{37}"),
        _rand,
        0.75,
    ),
    SecretFormat(
        "datadog",
        _API,
        _near(r"datadog|dd_api|dd_app|dd-api|dd-app", r"[a-f0-9]{40}|[a-f0-9]{32}"),
        _hex,
        0.8,
    ),
    SecretFormat(
        "newrelic",
        _API,
        r"(?:NRAK-[A-Z0-9]{27}|NR(?:AA|II|JS)-[A-Za-z0-9]{19,27})" + _R,
        _rand,
    ),
    SecretFormat("dynatrace", _API, r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}" + _R),
    SecretFormat("grafana-cloud", _API, _fixed("glc_", r"[A-Za-z0-9+/]{32,400}={0,2}"), _rand),
    SecretFormat("grafana-sa", _API, _fixed("glsa_", r"[A-Za-z0-9]{32}_[a-f0-9]{8}")),
    SecretFormat("sentry-org", _API, r"sntrys_eyJ[A-Za-z0-9+/=_]{50,}"),
    SecretFormat("sentry-user", _API, _fixed("sntryu_", r"[a-f0-9]{64}")),
    SecretFormat(
        "doppler", _API, _fixed(r"dp\.(?:pt|st|sa|ct|scim|audit)\.", r"[A-Za-z0-9]{40,44}"), _rand
    ),
    SecretFormat("vault", _API, _fixed(r"hv[sbr]\.", r"[A-Za-z0-9_\-]{24,}"), _rand),
    SecretFormat(
        "tailscale",
        _API,
        r"tskey-(?:api|auth|client|scim|webhook)-[A-Za-z0-9]+-[A-Za-z0-9]{20,}",
    ),
    SecretFormat("alibaba", _API, _fixed("LTAI", r"[A-Za-z0-9]{12,20}"), _rand),
    SecretFormat("tencent", _API, _fixed("AKID", r"[A-Za-z0-9]{13,40}"), _rand),
    SecretFormat("age", _API, r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    SecretFormat("onepassword", _API, r"ops_eyJ[A-Za-z0-9+/=_\-]{100,}"),
    SecretFormat("infracost", _API, _fixed("ico-", r"[A-Za-z0-9]{32}"), _rand),
    # SaaS productivity.
    SecretFormat("linear", _API, _fixed("lin_api_", r"[A-Za-z0-9]{40}"), _rand),
    SecretFormat("linear-oauth", _API, _fixed("lin_oauth_", r"[a-f0-9]{64}")),
    SecretFormat("notion", _API, _fixed("ntn_", r"[0-9]{11}[A-Za-z0-9]{35}"), _rand),
    SecretFormat("notion-legacy", _API, _fixed("secret_", r"[A-Za-z0-9]{43}"), _rand),
    SecretFormat("postman", _API, _fixed("PMAK-", r"[a-f0-9]{24}-[a-f0-9]{34}")),
    SecretFormat("airtable", _API, _fixed("pat", r"[A-Za-z0-9]{14}\.[a-f0-9]{64}")),
    SecretFormat("asana", _API, r"\b[0-9]/[0-9]{10,20}(?:/[0-9]{10,20})?:[a-f0-9]{32}" + _R),
    SecretFormat("figma", _API, _fixed("figd_", r"[A-Za-z0-9_\-]{40}"), _rand),
    SecretFormat("dropbox", _API, _fixed(r"sl\.(?:u\.)?", r"[A-Za-z0-9_\-]{130,}"), _rand),
    SecretFormat("contentful", _API, _fixed("CFPAT-", r"[A-Za-z0-9_\-]{43}"), _rand),
    SecretFormat("mapbox", _API, r"sk\.eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,}"),
    SecretFormat("adafruit", _API, _fixed("aio_", r"[A-Za-z0-9]{28}"), _rand),
    SecretFormat("frameio", _API, _fixed("fio-u-", r"[A-Za-z0-9_=\-]{64}"), _rand),
    SecretFormat("readme", _API, _fixed("rdme_", r"[a-z0-9]{70}")),
    SecretFormat("prefect", _API, _fixed("pnu_", r"[A-Za-z0-9]{36}"), _rand),
    SecretFormat("render", _API, _fixed("rnd_", r"[A-Za-z0-9]{32}"), _rand),
    # Generic structures.
    SecretFormat(
        "private-key",
        "PRIVATE_KEY",
        r"-----BEGIN[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
        r"|[A-Za-z0-9+/=\s\\:,.\-]{16,})",
        chk.is_private_key_block,
        0.99,
        is_bounded=False,  # JSON escapes put "\\n" (an "n") right before "-----BEGIN"
    ),
    SecretFormat(
        "putty-private-key",
        "PRIVATE_KEY",
        r"PuTTY-User-Key-File-\d: [^\n]+\n(?:[^\n]*\n){0,8}?"
        r"Private-Lines: \d+\n[A-Za-z0-9+/=\n]{40,}",
        None,
        0.99,
    ),
    SecretFormat(
        "jwt",
        "JWT",
        r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        chk.is_jwt,
        0.9,
    ),
    SecretFormat(
        "url-credentials",
        "CONNECTION_STRING",
        r"://[^\s:/@'\"<>]{0,64}:[^\s@/'\"<>]{1,128}@[^\s/'\"<>]+",
        lambda v: chk.is_password(chk.url_password(v)),
        0.9,
        is_sample=lambda v: chk.is_sample_password(chk.url_password(v)),
        has_scheme=True,
    ),
    SecretFormat(
        "dsn-password",
        "PASSWORD",
        # "&" ends the value only where a URL query goes on ("&user=x"); passwords contain "&".
        r"(?i)(?:^|[;?&\s])(?:password|pwd)=(?P<s>(?:[^;&\s'\"<]|&(?![\w.\-]+=)){3,128})",
        chk.is_password,
        0.85,
        is_sample=chk.is_sample_password,
    ),
    SecretFormat(
        "signalvault",
        "SIGNALVAULT_KEY",
        _fixed(r"sv-[a-z0-9]{1,16}-", r"[0-9A-Za-z]{49}"),
        chk.is_signalvault_key,
        0.99,
    ),
)
