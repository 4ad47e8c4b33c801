"""Rendering pages: one Jinja2 environment with autoescaping on for every template, so every
value (prompts, end-user ids, key and project names) is text; nothing is marked safe."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
import orjson
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from signalvault import __version__
from signalvault.dashboard.nav import visible_entries
from signalvault.dashboard.viewer import CSRF_FIELD, Viewer

TEMPLATES = Path(__file__).with_name("templates")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["number"] = number
    env.filters["ms"] = milliseconds
    env.filters["pretty_json"] = pretty_json
    env.filters["duration"] = duration
    env.filters["readable"] = readable
    env.globals["version"] = __version__
    env.globals["csrf_field"] = CSRF_FIELD
    return env


def when(value: str | float | None) -> Markup:
    """A time as `<time>` in UTC; the page's script shows it in the viewer's zone, with UTC on
    hover. Built from an ISO string or epoch seconds only: nothing else reaches the markup."""
    if value is None or value == "":
        return Markup("<span class=muted>never</span>")
    if isinstance(value, int | float):
        moment = dt.datetime.fromtimestamp(value, dt.UTC)
    else:
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return Markup("<span>{}</span>").format(value)
    utc = moment.astimezone(dt.UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc.isoformat().replace("+00:00", "Z"), text, text
    )


def number(value: float | int | None) -> str:
    if value is None:
        return "\u2013"  # en dash: no value
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def milliseconds(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:,.0f} ms"


def duration(seconds: float | None) -> str:
    """A span of time people read at a glance: 340 ms, 45 s, 12 min, 3 h 20 min, 2 d 4 h."""
    if seconds is None:
        return "\u2013"
    millis = max(0, round(seconds * 1000))
    if millis < 1000:  # an agent run often takes less than a second
        return f"{millis} ms"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def pretty_json(value: Any) -> str:
    """JSON for a `<pre>` block (escaped by the template like any text)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def readable(text: str) -> str:
    """Content as stored (a request or response body): indented when it is JSON, as is
    otherwise. Still text: the template escapes it."""
    try:
        return pretty_json(orjson.loads(text))
    except orjson.JSONDecodeError:
        return text


def page(
    request: Request,
    template: str,
    viewer: Viewer | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A whole page: the template with the navigation this viewer may use."""
    env: jinja2.Environment = request.app.state.templates
    body = env.get_template(template).render(
        viewer=viewer,
        # An account with a one-time password may only change it: no navigation until then.
        nav=[]
        if viewer is None or viewer.who.must_change_password
        else visible_entries(viewer.who),
        path=request.url.path,
        **values,
    )
    return HTMLResponse(body, status_code=status_code)
