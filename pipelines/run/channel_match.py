"""A run's channels found in a store by what they measure, whatever their order there.

Channels are named by what they measure — `z_500` (variable × pressure level), `t2m`,
`700.0nm` (band centre) — and a run records its own (`model.json`), so inference finds
each of them in the data by name: the store's order never matters, and what the data
lacks or holds besides is said, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelMatch:
    index: list[int]  # positions in the data of the run's channels it holds, in run order
    missing: list[str]  # the run's channels the data lacks
    new: list[str]  # the data's channels the run does not know
    reordered: bool  # the data holds the run's channels in another order

    def notes(self, what: str = "channels") -> list[str]:
        """What a user should know of a match that is complete but not identical."""
        out = []
        if self.reordered:
            out.append(f"the data holds the run's {what} in another order: matched by name")
        if self.new:
            out.append(f"{len(self.new)} {what} of the data are not the run's and are not "
                       f"input (e.g. {', '.join(self.new[:3])})")
        return out


def match_channels(run_names: list[str], data_names: list[str]) -> ChannelMatch:
    where = {n: i for i, n in enumerate(data_names)}
    found = [where[n] for n in run_names if n in where]
    known = set(run_names)
    return ChannelMatch(found, [n for n in run_names if n not in where],
                        [n for n in data_names if n not in known],
                        found != sorted(found))


def channel_measures(kind: str, names: list[str], wavelength: list[float] | None = None,
                     fwhm: list[float] | None = None) -> dict:
    """What each channel measures, for model.json: band centre and width for cubes,
    variable and pressure level (None: a single-level field) for weather."""
    if kind == "appl":
        return {"wavelength_nm": list(map(float, wavelength or [])),
                "fwhm_nm": list(map(float, fwhm or []))}
    variables, levels = [], []
    for n in names:
        var, _, level = n.rpartition("_")
        if var and level.isdigit():
            variables.append(var)
            levels.append(int(level))
        else:
            variables.append(n)
            levels.append(None)
    return {"variable": variables, "level": levels}
