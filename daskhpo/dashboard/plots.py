"""The bokeh figures of a search, used by the live page, ``search.plot()`` and ``daskhpo report``.

:class:`SearchView` owns the figures and their data sources and is fed whole lists of stored records
(:func:`~daskhpo.dashboard.data.store_records`); it rebuilds its figures only when the set of
parameters changes, and otherwise just replaces the sources' data, so a live page keeps its zoom.

The data sources carry names the page and the tests look up: ``daskhpo-trials`` (one row per plotted
evaluation), ``daskhpo-rungs``, ``daskhpo-curves`` and ``daskhpo-top`` (the table).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from .data import Summary, summarize

__all__ = ["SearchView", "plot_records", "plot_store"]

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


class SearchView:
    """The dashboard of one search as a bokeh ``column``, fed with :meth:`update`.

    Parameters
    ----------
    name : str
        The search's name, shown in the header.
    top : int
        Rows in the table of best trials.
    """

    def __init__(self, name: str, *, top: int = 50) -> None:
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource
        from bokeh.models.widgets import Div

        self.name = name
        self.top = top
        self.trials = ColumnDataSource(name="daskhpo-trials")
        self.rungs = ColumnDataSource(name="daskhpo-rungs")
        self.curves = ColumnDataSource(name="daskhpo-curves")
        self.table = ColumnDataSource(name="daskhpo-top")
        self.header = Div(name="daskhpo-header", width=1100)
        self.body = column(name="daskhpo-body")
        self.root = column(self.header, self.body, name="daskhpo-dashboard")
        self.summary = Summary()
        self._key: tuple[Any, ...] | None = None
        self._factor_ranges: list[tuple[int, Any]] = []
        self._rung_range: Any = None

    # -- feeding ---------------------------------------------------------------------------------
    def update(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        status: str | None = None,
        others: Sequence[tuple[str, str]] = (),
        rule: str | None = None,
    ) -> Summary:
        """Show ``records`` (every stored evaluation so far). ``others``: (name, url) links;
        ``rule``: the search's best rule (see :func:`~daskhpo.dashboard.data.summarize`)."""
        s = summarize(records, top=self.top, rule=rule)
        if s.layout_key() != self._key:
            self._build(s)
            self._key = s.layout_key()
        for i, rng in self._factor_ranges:
            factors = list(s.params[i].factors)
            if list(rng.factors) != factors:
                rng.factors = factors
        if self._rung_range is not None and list(self._rung_range.factors) != s.rungs["x"]:
            self._rung_range.factors = list(s.rungs["x"])
        self.trials.data = s.trials
        self.rungs.data = s.rungs
        self.curves.data = s.curves
        self.table.data = s.top
        self.header.text = self._header(s, status, others)
        self.summary = s
        return s

    def _header(self, s: Summary, status: str | None, others: Sequence[tuple[str, str]]) -> str:
        parts = [f"<b>{s.n_records}</b> evaluations stored", f"<b>{s.n_plotted}</b> plotted"]
        if s.n_failed:
            parts.append(f"<b>{s.n_failed}</b> failed")
        if status:
            parts.insert(0, f"status <b>{html.escape(status)}</b>")
        best = ""
        if s.best is not None:
            params = ", ".join(f"{k}={v}" for k, v in s.best["params"].items())
            at = "" if s.best["budget"] is None else f" at budget {s.best['budget']:g}"
            best = (
                f"<p>best score <b>{s.best['score']:.4f}</b> (trial {s.best['trial_id']}{at}): "
                f"<code>{html.escape(params)}</code></p>"
            )
        links = ""
        if others:
            links = "<p>other searches: " + " · ".join(
                f'<a href="{html.escape(url)}">{html.escape(n)}</a>' for n, url in others
            )
            links += "</p>"
        return (
            f'<h2 style="margin:0.2em 0">daskhpo · {html.escape(self.name)}</h2>'
            f"<p>{' · '.join(parts)}</p>{best}{links}"
        )

    # -- figures ---------------------------------------------------------------------------------
    def _hover(self, renderer: Any) -> Any:
        from bokeh.models import HoverTool

        return HoverTool(
            renderers=[renderer],
            tooltips=[
                ("trial", "@trial_id"),
                ("score", "@score{0.0000}"),
                ("budget", "@budget"),
                ("params", "@params"),
            ],
        )

    def _build(self, s: Summary) -> None:
        from bokeh.layouts import column, row
        from bokeh.models import FactorRange
        from bokeh.models.widgets import Div
        from bokeh.plotting import figure
        from bokeh.transform import jitter

        self._factor_ranges = []
        self._rung_range = None

        history = figure(
            title="Score of each evaluation and best so far",
            x_axis_label="evaluations finished",
            y_axis_label="score",
            width=520,
            height=300,
            tools=TOOLS,
            name="daskhpo-history",
        )
        points = history.scatter(
            "order", "score", source=self.trials, color="color", alpha=0.6, size=6
        )
        history.add_tools(self._hover(points))
        history.step(
            "order",
            "best",
            source=self.trials,
            mode="after",
            line_width=2,
            color="black",
            legend_label="best so far",
        )
        history.legend.location = "bottom_right"
        top_row = [history]

        if s.adaptive:
            self._rung_range = FactorRange(factors=list(s.rungs["x"]))
            rungs = figure(
                title="Trials alive per bracket and budget (rungs)",
                x_range=self._rung_range,
                y_axis_label="trials",
                width=380,
                height=300,
                tools="save,reset",
                name="daskhpo-rung-figure",
            )
            rungs.vbar(x="x", top="alive", width=0.8, source=self.rungs, color="color")
            rungs.xaxis.major_label_orientation = 0.8
            rungs.xgrid.grid_line_color = None
            budgets = [b for xs in s.curves["xs"] for b in xs]
            log = bool(budgets) and min(budgets) > 0 and max(budgets) / min(budgets) >= 10
            curves = figure(
                title="Score against budget, one line per trial",
                x_axis_label="budget",
                y_axis_label="score",
                x_axis_type="log" if log else "linear",
                width=380,
                height=300,
                tools=TOOLS,
                name="daskhpo-curves-figure",
            )
            curves.multi_line("xs", "ys", source=self.curves, color="color", alpha=0.5)
            top_row += [rungs, curves]

        param_figs = []
        for i, p in enumerate(s.params):
            common: dict[str, Any] = {
                "title": p.name,
                "y_axis_label": "score",
                "width": 340,
                "height": 260,
                "tools": TOOLS,
                "name": f"daskhpo-param-{p.name}",
            }
            if p.numeric:
                fig = figure(x_axis_type="log" if p.log else "linear", **common)
                x: Any = f"x{i}"
            else:
                rng = FactorRange(factors=list(p.factors))
                fig = figure(x_range=rng, **common)
                self._factor_ranges.append((i, rng))
                x = jitter(f"x{i}", width=0.4, range=rng)
                fig.xaxis.major_label_orientation = 0.6 if len(p.factors) > 4 else 0.0
            points = fig.scatter(x, "score", source=self.trials, color="color", alpha=0.6, size=6)
            fig.add_tools(self._hover(points))
            param_figs.append(fig)

        children: list[Any] = [row(*top_row)]
        if param_figs:
            children.append(
                Div(text="<h3 style='margin:0.3em 0'>Score against each parameter</h3>")
            )
            children.append(
                column(*[row(*param_figs[k : k + 3]) for k in range(0, len(param_figs), 3)])
            )
        children.append(Div(text="<h3 style='margin:0.3em 0'>Best trials</h3>"))
        children.append(self._table(s))
        self.body.children = children

    def _table(self, s: Summary) -> Any:
        from bokeh.models.widgets import DataTable, NumberFormatter, TableColumn

        num = NumberFormatter(format="0.0000")
        columns = [
            TableColumn(field="rank", title="rank", width=45),
            TableColumn(field="trial_id", title="trial", width=50),
            TableColumn(field="score", title="score", formatter=num, width=70),
            TableColumn(field="std", title="std", formatter=num, width=70),
        ]
        if s.adaptive:
            columns += [
                TableColumn(field="budget", title="budget", width=60),
                TableColumn(field="bracket", title="bracket", width=55),
                TableColumn(field="rung", title="rung", width=45),
            ]
        columns += [
            TableColumn(field=f"p{i}", title=p.name, width=110) for i, p in enumerate(s.params)
        ]
        columns.append(
            TableColumn(
                field="fit_time",
                title="fit time (s)",
                formatter=NumberFormatter(format="0.000"),
                width=80,
            )
        )
        return DataTable(
            source=self.table,
            columns=columns,
            sortable=True,
            index_position=None,
            width=min(1100, 60 + sum(c.width for c in columns)),
            height=280,
            name="daskhpo-table",
        )


def plot_records(
    records: Sequence[Mapping[str, Any]],
    name: str = "search",
    status: str | None = None,
    rule: str | None = None,
) -> Any:
    """A bokeh layout of ``records``: best-so-far, score against each parameter, rungs, best trials."""
    view = SearchView(name)
    view.update(records, status=status, rule=rule)
    return view.root


def plot_store(store: Any, name: str | None = None) -> Any:
    """:func:`plot_records` of everything a MemoryStore or SQLiteStore holds."""
    from .data import store_records

    info = store.info()
    return plot_records(
        store_records(store),
        name=name or info["name"],
        status=info["status"],
        rule=info["spec"].get("best_rule"),
    )
