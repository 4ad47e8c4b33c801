"""The SOC 2 evidence report (SPEC §8): the Trust Services Criteria mapped to live evidence of a
period, built as data first (`build.build_report`, JSON-ready and signed like an export
manifest) and rendered as one self-contained HTML file (`html.render_html`); the dashboard shows
the same model. Never any prompt or response content: only counts, ids, names and settings.
"""
