"""The scorecard in the terminal: one table per channel and lead, this run first."""

from __future__ import annotations

from rich.table import Table

from dchag_cli.console import out
from pipelines.data.times import format_lead
from pipelines.eval.scorecard import THIS_RUN, Row


def print_scorecard(rows: list[Row], unmatched: list[str]) -> None:
    panels = list(dict.fromkeys((r.channel, r.lead_h, r.metric) for r in rows))
    for channel, lead, metric in panels:
        table = Table(title=f"scorecard {channel} at {format_lead(lead)}: global "
                      f"{metric.upper()} beside published scores", title_justify="left")
        for col in ("model", metric.upper(), "same protocol", "source"):
            table.add_column(col, justify="right" if col == metric.upper() else "left")
        for r in (r for r in rows if (r.channel, r.lead_h, r.metric) == (channel, lead,
                                                                           metric)):
            name = f"[bold red]{r.model}[/]" if r.model == THIS_RUN else r.model
            table.add_row(name, f"{r.value:.4g}", "—" if r.source.startswith("measured") else
                          ("yes" if not r.differs else "no"), r.source)
        out.print(table)
    differs = sorted({r.differs for r in rows if r.differs})
    for text in differs:
        out.print(f"[bold yellow]protocol differs:[/] {text} — these numbers are not "
                  "directly comparable", soft_wrap=True)
    if unmatched:
        out.print(f"no score of this run to set beside the published {', '.join(unmatched)} "
                  "(add those leads with --lead)", soft_wrap=True)
