"""One self-contained HTML page for a run folder, so the results can be mailed and read offline.

The page is for a sceptical reader: every experiment states the published claim it tests, shows
its pictures in grids (rows = backbone, columns = prior/optimizer) beside the inputs they came
from, lets the reader drag a before/after slider over the pairs that differ in one factor (as in
Nakano's Distill article), and gives the numbers in sortable tables and the R(f) curves in a plot
drawn as inline SVG. Nothing is fetched: pictures are base64 data URIs and the CSS/JS are inline.

The run folder is read through :mod:`paramviz.experiments.records` (:mod:`.load`), the plot is laid
out in :mod:`.plot`, and :mod:`.page` builds what each section shows and renders it through the
Jinja templates in ``templates/`` (autoescaped) with the CSS and script of ``static/``. Anything
missing from the folder is reported on the page and skipped rather than failing the report.
"""

from paramviz.experiments.report.page import render_report, write_report
from paramviz.experiments.report.plot import nice_ticks, r_plot, r_series

__all__ = ["nice_ticks", "r_plot", "r_series", "render_report", "write_report"]
