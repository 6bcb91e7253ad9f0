"""The bokeh figures of a search, used by the live page, ``search.plot()`` and ``daskhpo report``.

:class:`SearchView` owns the figures and their data sources and is fed a
:class:`~daskhpo.dashboard.data.TrialTable` (or a list of stored records); it rebuilds its figures only
when the set of parameters changes, and otherwise replaces the data of the sources whose content
changed, so a live page keeps its zoom and an update sends only what changed. Every source is bounded
whatever the number of trials (see :mod:`daskhpo.dashboard.data`).

The data sources carry names the page and the tests look up: ``daskhpo-trials`` (the sampled
evaluations: every one below 2,000), ``daskhpo-history-bins``, ``daskhpo-best``,
``daskhpo-histogram``, ``daskhpo-profile-N`` (parameter N's best and mean score per bin),
``daskhpo-rungs``, ``daskhpo-curves``, ``daskhpo-parallel``, ``daskhpo-importance`` and
``daskhpo-top`` (one page of the table). A live page (``live=True``) adds the table's controls and the
per-trial view, ``daskhpo-trial``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .data import (
    PAGE_ROWS,
    PALETTE,
    SAMPLE_POINTS,
    SAMPLE_TOP,
    TABLE_VIEWS,
    Summary,
    TrialTable,
    summarize_table,
)
from .trial import trial_html

__all__ = ["SearchView", "plot_records", "plot_store"]

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
TAP_TOOLS = "pan,wheel_zoom,box_zoom,reset,save,tap"
EMPTY_IMPORTANCE: dict[str, list[Any]] = {
    "name": [],
    "importance": [],
    "std": [],
    "low": [],
    "high": [],
}


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two sources' data are equal (nan equal to nan): then nothing is sent."""
    if old.keys() != new.keys():
        return False
    for k, a in new.items():
        b = old[k]
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            x, y = np.asarray(a), np.asarray(b)
            if x.shape != y.shape or x.dtype.kind != y.dtype.kind:
                return False
            if x.dtype.kind == "f":
                if not np.array_equal(x, y, equal_nan=True):
                    return False
            elif not np.array_equal(x, y):
                return False
        elif list(a) != list(b) and not _nan_equal(list(a), list(b)):
            return False
    return True


def _nan_equal(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x != y and not (
            isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
        ):
            return False
    return True


def _set(source: Any, data: Mapping[str, Any]) -> bool:
    if _same(source.data, data):
        return False
    source.data = dict(data)
    return True


class SearchView:
    """The dashboard of one search as a bokeh ``column``, fed with :meth:`update`.

    Parameters
    ----------
    name : str
        The search's name, shown in the header.
    top : int
        Rows in one page of the trials table.
    live : bool
        A page of the live server: the table gets its controls (best, latest or failed trials, pages,
        a trial id box) and a per-trial view, and importance is given to :meth:`update` (computed in
        the background). Otherwise (a static layout) importance is computed in :meth:`update`.
    lookup : callable, optional
        ``lookup(trial_id)`` returns every stored record of that trial, for the per-trial view.
    """

    def __init__(
        self,
        name: str,
        *,
        top: int = PAGE_ROWS,
        live: bool = False,
        lookup: Callable[[int], list[dict[str, Any]]] | None = None,
    ) -> None:
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource
        from bokeh.models.widgets import Div

        self.name = name
        self.top = top
        self.live = live
        self.lookup = lookup
        self.trials = ColumnDataSource(name="daskhpo-trials")
        self.history = ColumnDataSource(name="daskhpo-history-bins")
        self.best_line = ColumnDataSource(name="daskhpo-best")
        self.histogram = ColumnDataSource(name="daskhpo-histogram")
        self.rungs = ColumnDataSource(name="daskhpo-rungs")
        self.curves = ColumnDataSource(name="daskhpo-curves")
        self.parallel = ColumnDataSource(name="daskhpo-parallel")
        self.parallel_axes = ColumnDataSource(name="daskhpo-parallel-axes")
        self.importance = ColumnDataSource(data=dict(EMPTY_IMPORTANCE), name="daskhpo-importance")
        self.table = ColumnDataSource(name="daskhpo-top")
        self.profiles: list[Any] = []
        self.header = Div(name="daskhpo-header", width=1100)
        self.body = column(name="daskhpo-body")
        self.root = column(self.header, self.body, name="daskhpo-dashboard")
        self.summary = Summary()
        self.data: TrialTable | None = None
        self.rule: str | None = None
        self.view = "best"
        self.page = 0
        self.trial_id: int | None = None
        self._key: tuple[Any, ...] | None = None
        self._factor_ranges: list[tuple[int, Any]] = []
        self._rung_range: Any = None
        self._importance_range: Any = None
        self._importance_figure: Any = None
        self._importance: dict[str, Any] | None = None
        self._controls: dict[str, Any] = {}
        self._table_widget: Any = None
        self._table_changes = 0
        if live:
            self._make_controls()

    # -- feeding ---------------------------------------------------------------------------------
    def update(
        self,
        data: TrialTable | Sequence[Mapping[str, Any]],
        *,
        status: str | None = None,
        others: Sequence[tuple[str, str]] = (),
        rule: str | None = None,
        importance: Mapping[str, Any] | None = None,
    ) -> Summary:
        """Show ``data`` (every stored evaluation so far, as a table or as records). ``others``:
        (name, url) links; ``rule``: the search's best rule (see
        :func:`~daskhpo.dashboard.data.summarize_table`); ``importance``: what
        :func:`~daskhpo.dashboard.importance.importance` returned (a static view computes it)."""
        table = data if isinstance(data, TrialTable) else TrialTable.from_records(data)
        self.data, self.rule = table, rule
        s = summarize_table(table, rule=rule, top=self.top, view=self.view, page=self.page)
        self.page = s.page
        if s.layout_key() != self._key:
            self._build(s)
            self._key = s.layout_key()
        for i, rng in self._factor_ranges:
            factors = list(s.params[i].factors)
            if list(rng.factors) != factors:
                rng.factors = factors
        if self._rung_range is not None and list(self._rung_range.factors) != s.rungs["x"]:
            self._rung_range.factors = list(s.rungs["x"])
        if _set(self.trials, s.trials):
            self.trials.selected.indices = []  # selected rows would now be other trials
        _set(self.history, s.history)
        _set(self.best_line, s.best_line)
        _set(self.histogram, s.histogram)
        _set(self.rungs, s.rungs)
        _set(self.curves, s.curves)
        if _set(self.parallel, s.parallel):
            self.parallel.selected.indices = []
        _set(self.parallel_axes, s.parallel_axes)
        for source, profile in zip(self.profiles, s.profiles, strict=True):
            _set(source, profile)
        self._show_page(s)
        if importance is None and not self.live:
            from .importance import importance as compute

            importance = compute(table)
        if importance is not None:
            self.show_importance(importance)
        self.summary = s
        self.header.text = self._header(s, status, others)
        return s

    def _show_page(self, s: Summary) -> None:
        if _set(self.table, s.top):
            self.table.selected.indices = []
            if self._table_widget is not None:
                # BokehJS (3.9) redraws a DataTable when its source's length changes, not when
                # rows of the same length are replaced: a change of the table itself redraws it.
                self._table_changes += 1
                self._table_widget.tags = [self._table_changes]
        info = self._controls.get("info")
        if info is not None:
            first = s.page * self.top
            shown = len(s.top.get("trial_id", ()))
            info.text = (
                f"rows {first + 1 if shown else 0:,}–{first + shown:,} of {s.n_rows:,}"
                f" · page {s.page + 1} of {max(1, -(-s.n_rows // self.top)):,}"
            )

    def show_importance(self, result: Mapping[str, Any]) -> None:
        """Draw a result of :func:`~daskhpo.dashboard.importance.importance`."""
        self._importance = dict(result)
        names = list(result["name"])
        imp = np.asarray(result["importance"], dtype=float)
        std = np.asarray(result["std"], dtype=float)
        _set(
            self.importance,
            {
                "name": names,
                "importance": imp,
                "std": std,
                "low": imp - std,
                "high": imp + std,
            },
        )
        if self._importance_range is not None:
            factors = names[::-1]  # the most important at the top
            if list(self._importance_range.factors) != factors:
                self._importance_range.factors = factors
        if self._importance_figure is not None:
            self._importance_figure.title.text = _importance_title(result)

    # -- the table's controls and the per-trial view (live pages) --------------------------------
    def _make_controls(self) -> None:
        from bokeh.models.widgets import Button, Div, Select, TextInput

        c = self._controls
        options: list[Any] = [(k, t) for k, t in TABLE_VIEWS]
        c["view"] = Select(
            title="list",
            value="best",
            options=options,
            width=180,
            name="daskhpo-table-view",
        )
        c["prev"] = Button(label="◀ previous", width=100, name="daskhpo-prev")
        c["next"] = Button(label="next ▶", width=100, name="daskhpo-next")
        c["info"] = Div(text="", width=320, name="daskhpo-page-info")
        c["trial"] = TextInput(title="trial id", width=110, name="daskhpo-trial-input")
        c["shown"] = Div(
            text="<p><i>Select a row or a point (tap tool) to see that trial.</i></p>",
            width=1100,
            name="daskhpo-trial",
        )
        c["view"].on_change("value", lambda attr, old, new: self._turn(new, 0))
        c["prev"].on_click(lambda: self._turn(self.view, self.page - 1))
        c["next"].on_click(lambda: self._turn(self.view, self.page + 1))
        c["trial"].on_change("value", lambda attr, old, new: self._typed(new))
        self.table.selected.on_change("indices", self._picked_row)
        self.trials.selected.on_change("indices", self._picked_point)
        self.parallel.selected.on_change("indices", self._picked_line)

    def _turn(self, view: str, page: int) -> None:
        """Show page ``page`` of the table's ``view`` (a click on the controls)."""
        self.view, self.page = view, max(page, 0)
        if self.data is None:
            return
        s = summarize_table(self.data, rule=self.rule, top=self.top, view=self.view, page=self.page)
        self.page = s.page
        self._show_page(s)

    def _picked(self, source: Any, indices: Sequence[int]) -> None:
        if indices:
            ids = source.data.get("trial_id")
            if ids is not None and indices[-1] < len(ids):
                self.show_trial(int(ids[indices[-1]]))

    def _picked_row(self, attr: str, old: Any, new: Any) -> None:
        self._picked(self.table, new)

    def _picked_point(self, attr: str, old: Any, new: Any) -> None:
        self._picked(self.trials, new)

    def _picked_line(self, attr: str, old: Any, new: Any) -> None:
        self._picked(self.parallel, new)

    def _typed(self, text: str) -> None:
        try:
            trial_id = int(text.strip())
        except ValueError:
            return
        if trial_id != self.trial_id:
            self.show_trial(trial_id)

    def show_trial(self, trial_id: int) -> bool:
        """Show everything stored of ``trial_id`` in the per-trial view; False if it is not there."""
        shown = self._controls.get("shown")
        if shown is None or self.lookup is None:
            return False
        evaluations = self.lookup(trial_id)
        self.trial_id = trial_id
        box = self._controls["trial"]
        if box.value != str(trial_id):
            box.value = str(trial_id)
        shown.text = trial_html(trial_id, evaluations)
        return bool(evaluations)

    def show_progress(self, read: int, stored: int, status: str | None = None) -> None:
        """The header while the store is being read (before the first :meth:`update` or between
        two): how many of its evaluations are read so far."""
        state = "" if not status else f"status <b>{html.escape(status)}</b> · "
        self.header.text = (
            f'<h2 style="margin:0.2em 0">daskhpo · {html.escape(self.name)}</h2>'
            f"<p>{state}<i>reading the store: {read:,} of {stored:,} evaluations...</i></p>"
        )

    # -- the header ------------------------------------------------------------------------------
    def _header(
        self,
        s: Summary,
        status: str | None,
        others: Sequence[tuple[str, str]],
    ) -> str:
        parts = [f"<b>{s.n_records:,}</b> evaluations stored", f"<b>{s.n_plotted:,}</b> plotted"]
        if s.n_failed:
            parts.append(f"<b>{s.n_failed:,}</b> failed")
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
        notes = ""
        if s.sampled:
            notes += (
                f"<p style='color:#555'>The scatter plots show a sample of {s.n_plotted:,} of the "
                f"{s.n_scored:,} scored evaluations (the best {SAMPLE_TOP} and up to "
                f"{SAMPLE_POINTS:,} others at random); the grey band, the best-so-far line, the "
                "histogram and the per-parameter lines are computed from every evaluation.</p>"
            )
        links = ""
        if others:
            links = "<p>other searches: " + " · ".join(
                f'<a href="{html.escape(url)}">{html.escape(n)}</a>' for n, url in others
            )
            links += "</p>"
        return (
            f'<h2 style="margin:0.2em 0">daskhpo · {html.escape(self.name)}</h2>'
            f"<p>{' · '.join(parts)}</p>{best}{notes}{links}"
        )

    # -- figures ---------------------------------------------------------------------------------
    def _hover(self, renderer: Any, params: Sequence[Any] = ()) -> Any:
        from bokeh.models import HoverTool

        tooltips = [("trial", "@trial_id"), ("score", "@score{0.0000}"), ("budget", "@budget")]
        formatters: dict[str, Any] = {}
        for i, p in enumerate(params):
            if p.numeric:
                tooltips.append((p.name, f"@x{i}{{%.4g}}"))
                formatters[f"@x{i}"] = "printf"
            else:
                tooltips.append((p.name, f"@x{i}"))
        return HoverTool(renderers=[renderer], tooltips=tooltips, formatters=formatters)

    def _build(self, s: Summary) -> None:
        from bokeh.layouts import column, row
        from bokeh.models import ColumnDataSource, FactorRange, NumeralTickFormatter
        from bokeh.models.widgets import Div
        from bokeh.plotting import figure
        from bokeh.transform import jitter

        self._factor_ranges = []
        self._rung_range = None
        tools = TAP_TOOLS if self.live else TOOLS

        history = figure(
            title="Score of each evaluation and best so far",
            x_axis_label="evaluations finished",
            y_axis_label="score",
            width=520,
            height=300,
            tools=tools,
            name="daskhpo-history",
        )
        history.quad(
            left="left",
            right="right",
            bottom="low",
            top="high",
            source=self.history,
            color="#999999",
            alpha=0.45,
            line_width=0,
        )
        history.line("x", "mean", source=self.history, color="#555555")
        points = history.scatter(
            "order", "score", source=self.trials, color=_bracket_color(), alpha=0.6, size=6
        )
        history.add_tools(self._hover(points, s.params))
        history.step(
            "order",
            "best",
            source=self.best_line,
            mode="after",
            line_width=2,
            color="black",
            legend_label="best so far",
        )
        history.legend.location = "bottom_right"
        history.legend.background_fill_alpha = 0.6
        history.legend.label_text_font_size = "8pt"
        history.xaxis.formatter = NumeralTickFormatter(format="0,0")

        distribution = figure(
            title="Scores of every evaluation",
            x_axis_label="score",
            y_axis_label="evaluations",
            width=340,
            height=300,
            tools="save,reset,box_zoom",
            name="daskhpo-histogram-figure",
        )
        distribution.quad(
            left="left",
            right="right",
            bottom=0,
            top="count",
            source=self.histogram,
            color="#1f77b4",
            alpha=0.7,
        )
        top_row = [history, distribution]

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

        children: list[Any] = [row(*top_row)]
        if s.params:
            children.append(row(self._importance_plot(s), self._parallel_plot(s, tools)))

        param_figs = []
        self.profiles = []
        for i, p in enumerate(s.params):
            common: dict[str, Any] = {
                "title": p.name,
                "y_axis_label": "score",
                "width": 340,
                "height": 260,
                "tools": tools,
                "name": f"daskhpo-param-{p.name}",
            }
            profile = ColumnDataSource(name=f"daskhpo-profile-{i}")
            self.profiles.append(profile)
            if p.numeric:
                fig = figure(x_axis_type="log" if p.log else "linear", **common)
                x: Any = f"x{i}"
                fig.line("x", "max", source=profile, color="black", line_width=1.5)
                fig.line("x", "mean", source=profile, color="#777777", line_dash="dashed")
            else:
                rng = FactorRange(factors=list(p.factors))
                fig = figure(x_range=rng, **common)
                self._factor_ranges.append((i, rng))
                x = jitter(f"x{i}", width=0.4, range=rng)
                fig.xaxis.major_label_orientation = 0.6 if len(p.factors) > 4 else 0.0
                fig.scatter("x", "max", source=profile, marker="dash", size=22, color="black")
                fig.scatter("x", "mean", source=profile, marker="dash", size=22, color="#777777")
            points = fig.scatter(
                x, "score", source=self.trials, color=_bracket_color(), alpha=0.6, size=6
            )
            fig.add_tools(self._hover(points, s.params))
            param_figs.append(fig)

        if param_figs:
            children.append(
                Div(
                    text="<h3 style='margin:0.3em 0'>Score against each parameter</h3>"
                    "<p style='margin:0;color:#555'>black: the best score per bin (or category), "
                    "grey: the mean, over every evaluation when the points are a sample</p>"
                )
            )
            children.append(
                column(*[row(*param_figs[k : k + 3]) for k in range(0, len(param_figs), 3)])
            )
        children.append(Div(text="<h3 style='margin:0.3em 0'>Trials</h3>"))
        if self.live:
            c = self._controls
            children.append(row(c["view"], c["prev"], c["next"], c["info"], c["trial"]))
        children.append(self._table(s))
        if self.live:
            children.append(self._controls["shown"])
        self.body.children = children

    def _importance_plot(self, s: Summary) -> Any:
        from bokeh.models import FactorRange, HoverTool
        from bokeh.models.annotations import Whisker
        from bokeh.plotting import figure

        current = self._importance or {}
        self._importance_range = FactorRange(factors=list(current.get("name", []))[::-1])
        fig = figure(
            title=_importance_title(current) if current else "Parameter importance: computing...",
            y_range=self._importance_range,
            x_axis_label="permutation importance (drop of held-out R²)",
            width=470,
            height=300,
            tools="save,reset",
            name="daskhpo-importance-figure",
        )
        bars = fig.hbar(
            y="name",
            right="importance",
            height=0.7,
            source=self.importance,
            color="#2ca02c",
            alpha=0.8,
        )
        fig.add_layout(
            Whisker(
                source=self.importance, base="name", lower="low", upper="high", dimension="width"
            )
        )
        fig.add_tools(
            HoverTool(
                renderers=[bars],
                tooltips=[
                    ("parameter", "@name"),
                    ("importance", "@importance{0.0000} ± @std{0.0000}"),
                ],
            )
        )
        title: Any = fig.title
        title.text_font_size = "9pt"
        self._importance_figure = fig
        return fig

    def _parallel_plot(self, s: Summary, tools: str) -> Any:
        from bokeh.models import FixedTicker, HoverTool, LinearColorMapper, Range1d
        from bokeh.models.annotations import ColorBar
        from bokeh.palettes import Viridis256
        from bokeh.plotting import figure

        n = len(s.params)
        mapper = LinearColorMapper(palette=Viridis256)
        fig = figure(
            title="Parallel coordinates: up to 1,000 trials (always the best 50), colored by score",
            x_range=Range1d(start=-0.3, end=n + 0.6),
            y_range=Range1d(start=-0.12, end=1.12),
            width=630,
            height=300,
            tools=tools,
            name="daskhpo-parallel-figure",
        )
        fig.segment(x0=list(range(n + 1)), y0=0, x1=list(range(n + 1)), y1=1, color="#999999")
        lines = fig.multi_line(
            "xs",
            "ys",
            source=self.parallel,
            line_color={"field": "score", "transform": mapper},
            line_alpha=0.35,
            line_width=1,
        )
        fig.text(
            "x",
            "y",
            text="text",
            source=self.parallel_axes,
            text_font_size="8pt",
            x_offset=4,
            text_baseline="middle",
        )
        fig.add_tools(
            HoverTool(
                renderers=[lines],
                tooltips=[("trial", "@trial_id"), ("score", "@score{0.0000}")],
                line_policy="interp",
            )
        )
        fig.xaxis.ticker = FixedTicker(ticks=list(range(n + 1)))
        overrides: dict[Any, Any] = {i: p.name for i, p in enumerate(s.params)}
        overrides[n] = "score"
        fig.xaxis.major_label_overrides = overrides
        fig.xaxis.major_label_orientation = 0.3 if n > 5 else 0.0
        fig.yaxis.visible = False
        fig.ygrid.grid_line_color = None
        fig.xgrid.grid_line_color = None
        fig.add_layout(ColorBar(color_mapper=mapper, width=8), "right")
        title: Any = fig.title
        title.text_font_size = "9pt"
        return fig

    def _table(self, s: Summary) -> Any:
        from bokeh.models.widgets import DataTable, NumberFormatter, TableColumn

        num = NumberFormatter(format="0.0000")
        columns = [
            TableColumn(field="rank", title="#", width=45),
            TableColumn(field="trial_id", title="trial", width=50),
            TableColumn(field="score", title="score", formatter=num, width=70),
            TableColumn(field="std", title="std", formatter=num, width=70),
        ]
        if self.live:
            columns.append(TableColumn(field="status", title="status", width=65))
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
        self._table_widget = DataTable(
            source=self.table,
            columns=columns,
            sortable=True,
            index_position=None,
            width=min(1100, 60 + sum(c.width for c in columns)),
            height=280,
            name="daskhpo-table",
        )
        return self._table_widget


def _bracket_color() -> Any:
    """A point's color from its bracket number (client side: no color column to send)."""
    from bokeh.transform import linear_cmap

    return linear_cmap("bracket", list(PALETTE), low=-0.5, high=len(PALETTE) - 0.5)


def _importance_title(result: Mapping[str, Any]) -> str:
    if result.get("note"):
        return f"Parameter importance: {result['note']}"
    r2 = result.get("r2", math.nan)
    return f"Parameter importance ({result.get('n_trials', 0):,} trials, held-out R² {r2:.2f})"


def plot_records(
    records: Sequence[Mapping[str, Any]] | TrialTable,
    name: str = "search",
    status: str | None = None,
    rule: str | None = None,
) -> Any:
    """A bokeh layout of ``records``: best-so-far, score distribution, parameter importance,
    parallel coordinates, score against each parameter, rungs, best trials."""
    view = SearchView(name)
    view.update(records, status=status, rule=rule)
    return view.root


def plot_store(store: Any, name: str | None = None) -> Any:
    """:func:`plot_records` of everything a MemoryStore or SQLiteStore holds."""
    from .data import StoreFeed

    info = store.info()
    feed = StoreFeed(store)
    try:
        feed.refresh()
    finally:
        feed.close()
    return plot_records(
        feed.table,
        name=name or info["name"],
        status=info["status"],
        rule=info["spec"].get("best_rule"),
    )
