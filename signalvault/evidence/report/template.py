# ruff: noqa: E501 (HTML and CSS lines are kept whole for reading)
"""The HTML report's template (a string, so it ships inside the package with no data files)."""

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SOC 2 evidence report · {{ report.period["from"] | short(10) }} to {{ report.period["to"] | short(10) }}</title>
<style>
:root { --ink: #1a202c; --muted: #4a5568; --line: #e2e8f0; --met: #2f855a; --gap: #c53030; --na: #718096; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #f7fafc; }
main { max-width: 1040px; margin: 0 auto; padding: 32px 28px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 0; }
h4 { font-size: 14px; margin: 14px 0 6px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.card { flex: 1 1 150px; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card b { display: block; font-size: 24px; }
.card.met b { color: var(--met); } .card.gap b { color: var(--gap); } .card.na b { color: var(--na); }
.badge { display: inline-block; min-width: 92px; text-align: center; border-radius: 999px; padding: 1px 10px; font-size: 12px; font-weight: 600; color: #fff; }
.badge.met { background: var(--met); } .badge.gap { background: var(--gap); } .badge.not_applicable { background: var(--na); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #f7fafc; font-weight: 600; white-space: nowrap; }
.criterion { border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px; margin: 14px 0; break-inside: avoid; }
.criterion > header { display: flex; gap: 12px; align-items: baseline; }
.criterion .id { font-weight: 700; min-width: 54px; }
.gaps { background: #fff5f5; border-left: 4px solid var(--gap); padding: 8px 12px; margin: 10px 0; }
.gaps li { margin: 4px 0; }
.remedy { color: var(--muted); }
.evidence { border-top: 1px dashed var(--line); margin-top: 10px; padding-top: 6px; }
dl.figures { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; font-size: 13px; }
dl.figures dt { color: var(--muted); } dl.figures dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
details.provenance { font-size: 12px; color: var(--muted); margin: 6px 0; }
details.provenance summary { cursor: pointer; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; background: #f7fafc; padding: 1px 4px; border-radius: 4px; overflow-wrap: anywhere; }
.ids { font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
svg.chart, svg.flow { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 8px; background: #fff; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.toc { columns: 2; font-size: 13px; padding-left: 18px; }
footer { margin-top: 40px; font-size: 12px; color: var(--muted); }
@media print { body { background: #fff; } main { padding: 0; } details.provenance { display: block; } }
</style>
</head>
<body>
<main>
<h1>SOC 2 evidence report</h1>
<p class="meta">Period {{ report.period["from"] }} to {{ report.period["to"] }} · generated {{ report.generated_at }} by {{ report.generator }} · audit record {{ report.audit_record_id }}</p>

<section class="cards" aria-label="Summary">
  <div class="card met"><b>{{ report.summary.met }}</b>criteria met</div>
  <div class="card gap"><b>{{ report.summary.gap }}</b>criteria with gaps</div>
  <div class="card na"><b>{{ report.summary.not_applicable }}</b>not applicable</div>
  <div class="card"><b>{{ report.trail.verification.status }}</b>trail integrity ({{ report.trail.verification.tree_size }} sealed records)</div>
</section>

<p class="meta">Trail covered: {{ report.trail.range.records }} records in the period{% if report.trail.range.first_seq is not none %}, sequence numbers {{ report.trail.range.first_seq }}&ndash;{{ report.trail.range.last_seq }}{% endif %}, {{ report.trail.range.unsealed }} not yet sealed.
{% if report.trail.range.checkpoint %}Signed checkpoint: tree size {{ report.trail.range.checkpoint.tree_size }}, root <code>{{ report.trail.range.checkpoint.root | short(24) }}…</code> at {{ report.trail.range.checkpoint.time }}.{% else %}No signed checkpoint yet.{% endif %}</p>

<h2>Contents</h2>
<ol class="toc">
{% for c in report.criteria %}
  <li><span class="badge {{ c.status }}">{{ labels[c.status] }}</span> {{ c.id }} {{ c.title }}</li>
{% endfor %}
</ol>

<h2>Traffic and findings</h2>
{{ traffic }}
<p></p>
{{ findings }}

<h2>Data flow</h2>
<p class="meta">Generated from the configuration: applications send requests with their gateway keys; the gateway screens and records them; providers receive only the data classes they are allowed.</p>
{{ flow }}

<h2>Gaps and remedies</h2>
{% if gaps %}
<table>
  <tr><th>Criterion</th><th>Gap</th><th>Remedy</th></tr>
  {% for g in gaps %}
  <tr><td><a href="#{{ g.criterion }}">{{ g.criterion }}</a></td><td>{{ g.problem | commands }}</td><td>{{ g.remedy | commands }}</td></tr>
  {% endfor %}
</table>
{% else %}
<p>No gaps were found in the period.</p>
{% endif %}

<h2>Criteria and evidence</h2>
{% for c in report.criteria %}
<article class="criterion" id="{{ c.id }}">
  <header><span class="id">{{ c.id }}</span><h3>{{ c.title }}</h3><span class="badge {{ c.status }}">{{ labels[c.status] }}</span></header>
  <div class="meta">{{ c.category | capitalize }}{% if c.note %} · {{ c.note }}{% endif %}</div>
  {% if c.gaps %}
  <ul class="gaps">
    {% for g in c.gaps %}<li>{{ g.problem | commands }} <span class="remedy">— remedy: {{ g.remedy | commands }}</span></li>{% endfor %}
  </ul>
  {% endif %}
  {% for e in c.evidence %}
  <section class="evidence">
    <h4>{{ e.title }}</h4>
    {% if e.figures %}
    <dl class="figures">
      {% for name, value in e.figures.items() %}<dt>{{ name | replace("_", " ") }}</dt><dd>{{ value | value }}</dd>{% endfor %}
    </dl>
    {% endif %}
    {% if e.table and e.table.rows %}
    <table>
      <tr>{% for col in e.table.columns %}<th>{{ col }}</th>{% endfor %}</tr>
      {% for row in e.table.rows[:25] %}<tr>{% for cell in row %}<td>{{ cell | value }}</td>{% endfor %}</tr>{% endfor %}
    </table>
    {% if e.table.rows | length > 25 %}<p class="ids">{{ e.table.rows | length - 25 }} more rows in the JSON report.</p>{% endif %}
    {% elif e.table %}<p class="ids">No rows.</p>{% endif %}
    {% if e.record_ids %}<p class="ids">Records: {{ e.record_ids[:8] | join(", ") }}{% if e.record_ids | length > 8 %} and {{ e.record_ids | length - 8 }} more{% endif %}</p>{% endif %}
    <details class="provenance">
      <summary>How this was produced: {{ e.row_count }} row(s), {{ e.produced_by.source }}, valid until {{ e.valid_until or ("the configuration changes" if e.produced_by.source == "configuration" else "records of the period are removed") }}</summary>
      <p>Query: <code>{{ e.produced_by.query }}</code></p>
      {% if e.produced_by.parameters %}<p>Parameters: <code>{{ e.produced_by.parameters | tojson }}</code></p>{% endif %}
      <p>Run at {{ e.generated_at }}{% if e.trail_range %}; trail seq {{ e.trail_range.first_seq }}&ndash;{{ e.trail_range.last_seq }}{% if e.trail_range.checkpoint %}, checkpoint tree size {{ e.trail_range.checkpoint.tree_size }}{% endif %}{% endif %}.</p>
    </details>
  </section>
  {% endfor %}
</article>
{% endfor %}

<footer>
  <p>The JSON form of this report is signed with Ed25519 key {{ report.signing_key.id }} (public key <code>{{ report.signing_key.public_key }}</code>); check it with <code>signalvault report verify FILE.json</code>. Every evidence item names its query and parameters so it can be re-run against the trail; <code>signalvault audit verify</code> re-derives the trail's integrity.</p>
  <p>This report holds no prompt or response content: only counts, record ids, names and settings.</p>
</footer>
</main>
</body>
</html>
"""
