"""A real HTTP server on 127.0.0.1 serving a folder (a zarr store), with faults on demand:
5xx answers, stalls, trickles and bodies cut short — what a cloud bucket does on a bad
day."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


@dataclass
class Faults:
    """What the next chunk requests meet (metadata requests are answered normally unless
    `status` says otherwise). Each count is used up as requests arrive."""

    errors_5xx: int = 0  # answered 503
    stalls: int = 0  # answered after `stall_s` (longer than the client's timeout)
    truncations: int = 0  # full Content-Length, half the body, connection closed
    trickles: int = 0  # the body sent one byte every `trickle_s`: never silent, never done
    stall_s: float = 3.0
    trickle_s: float = 0.5
    status: dict[str, int] = field(default_factory=dict)  # path suffix → status, always
    served_bytes: int = 0  # payload bytes of successful answers
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, name: str) -> bool:
        with self.lock:
            left = getattr(self, name)
            if left > 0:
                setattr(self, name, left - 1)
                return True
            return False


class _Handler(SimpleHTTPRequestHandler):
    faults: Faults

    def log_message(self, *args) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        f = self.faults
        with f.lock:
            f.requests += 1
        for suffix, code in f.status.items():
            if self.path.endswith(suffix):
                self.send_error(code)
                return
        chunk = not Path(self.path).name.startswith(".")
        if chunk and f.take("errors_5xx"):
            self.send_error(503, "Slow Down")
            return
        if chunk and f.take("stalls"):
            time.sleep(f.stall_s)
        local = Path(self.translate_path(self.path))
        if not local.is_file():
            self.send_error(404)
            return
        body = local.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if chunk and f.take("trickles"):
            with contextlib.suppress(OSError):  # the client gives up: a broken pipe
                for k in range(len(body)):
                    self.wfile.write(body[k:k + 1])
                    self.wfile.flush()
                    time.sleep(f.trickle_s)
            self.close_connection = True
            return
        if chunk and f.take("truncations"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
        with f.lock:
            f.served_bytes += len(body)


@contextlib.contextmanager
def serve(root: Path, faults: Faults | None = None) -> Iterator[tuple[str, Faults]]:
    """(base URL, faults) of a server for `root`, on a free port of 127.0.0.1."""
    faults = faults or Faults()
    handler = type("Handler", (_Handler,), {"faults": faults})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        server.server_close()


def write_three_months(out: Path) -> Path:
    """A WeatherBench 2 64×32 store (zarr v2, consolidated): t2m and z on 500/850 hPa,
    6-hourly, January–March 2018, one day per chunk."""
    times = pd.date_range("2018-01-01", "2018-03-31T18", freq="6h")
    lat = np.linspace(-87.1875, 87.1875, 32)
    lon = np.arange(64) * 5.625
    rng = np.random.default_rng(0)
    shape = (times.size, lon.size, lat.size)
    t2m = 270 + 25 * np.cos(np.deg2rad(lat))[None, None] + rng.normal(0, 2, shape)
    z = np.stack([54000 + rng.normal(0, 500, shape), 14000 + rng.normal(0, 300, shape)], 1)
    ds = xr.Dataset(
        {"2m_temperature": (("time", "longitude", "latitude"), t2m.astype("float32"),
                            {"units": "K"}),
         "geopotential": (("time", "level", "longitude", "latitude"), z.astype("float32"),
                          {"units": "m**2 s**-2"})},
        coords={"time": times, "level": [500, 850], "latitude": lat, "longitude": lon})
    for name in ds.data_vars:
        ds[name].encoding = {"chunks": (4, *ds[name].shape[1:])}
    ds.to_zarr(out, mode="w", zarr_format=2, consolidated=True)
    return out


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def write_climax_layout(out: Path) -> Path:
    """A WeatherBench 2-layout store holding ClimaX's 48 channels (zeros: for dry runs),
    6-hourly over the turn of 2016/2017."""
    times = pd.date_range("2016-12-25", "2017-01-05T18", freq="6h")
    lat = np.linspace(-87.1875, 87.1875, 32)
    lon = np.arange(64) * 5.625
    levels = [50, 250, 500, 600, 700, 850, 925]
    surface = np.zeros((times.size, lon.size, lat.size), np.float32)
    upper = np.zeros((times.size, len(levels), lon.size, lat.size), np.float32)
    fixed = np.zeros((lon.size, lat.size), np.float32)
    data = {name: (("time", "longitude", "latitude"), surface) for name in
            ("2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind")}
    data |= {name: (("time", "level", "longitude", "latitude"), upper) for name in
             ("geopotential", "u_component_of_wind", "v_component_of_wind", "temperature",
              "relative_humidity", "specific_humidity")}
    data |= {name: (("longitude", "latitude"), fixed) for name in
             ("land_sea_mask", "geopotential_at_surface")}
    ds = xr.Dataset(data, coords={"time": times, "level": levels, "latitude": lat,
                                  "longitude": lon})
    ds.to_zarr(out, mode="w", zarr_format=2, consolidated=True)
    return out
