"""ERA5 zarr stores read where they live: `gs://`, `s3://` and `https://` URLs.

WeatherBench 2's 64×32 and 1.40625° stores and ARCO-ERA5 are public zarr on Google Cloud
Storage. They are read through fsspec's HTTP filesystem (the `cloud` extra: fsspec and
aiohttp), anonymously: `gs://bucket/key` is Google's public endpoint
`https://storage.googleapis.com/bucket/key` and `s3://bucket/key` is
`https://bucket.s3.amazonaws.com/key`. Private buckets use gcsfs or s3fs instead, and their
usual credential environment, when it is set (`GOOGLE_APPLICATION_CREDENTIALS`,
`AWS_ACCESS_KEY_ID` / `AWS_PROFILE`).

Only the chunks a read touches are fetched — xarray indexes the store lazily and zarr
fetches a selection's chunks concurrently (`zarr.config` `async.concurrency`). A transient
failure (HTTP 5xx or 429, a timeout, a connection reset, a body cut short) is retried with
exponential backoff; what cannot succeed (403, 404 of the store's metadata, a host that does
not answer) becomes one line naming the URL and the fix. A chunk answered 404 is a chunk
never written, which zarr reads as the fill value (NaN for ERA5), as from a local folder.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zarr.storage import WrapperStore

from pipelines.errors import DchagError
from pipelines.extras import require

SCHEMES = ("gs://", "s3://", "http://", "https://")
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_FETCHED = [0]  # bytes fetched by this process, over all remote stores


def is_url(text: str) -> bool:
    return str(text).lower().startswith(SCHEMES)


def bytes_fetched() -> int:
    """Bytes this process has fetched from remote stores (payloads, not headers)."""
    return _FETCHED[0]


def https_url(url: str) -> str:
    """The public HTTPS address of an anonymous `gs://` or `s3://` object."""
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme == "gs":
        return f"https://storage.googleapis.com/{bucket}/{key}".rstrip("/")
    if scheme == "s3":
        return f"https://{bucket}.s3.amazonaws.com/{key}".rstrip("/")
    return url.rstrip("/")


def _credentials(url: str) -> str | None:
    """The credentialled filesystem to use for a private bucket, if its environment is set."""
    if url.startswith("gs://") and os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        check_key_file(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]))
        return "gcsfs"
    if url.startswith("s3://") and (os.environ.get("AWS_ACCESS_KEY_ID")
                                    or os.environ.get("AWS_PROFILE")):
        return "s3fs"
    return None


def check_key_file(path: Path) -> None:
    """GOOGLE_APPLICATION_CREDENTIALS names a readable JSON key: gcsfs would otherwise
    fall back to anonymous access with a traceback in the log, and the bucket's refusal
    would then be blamed on the bucket."""
    fix = "point GOOGLE_APPLICATION_CREDENTIALS at the key's JSON file, or unset it " \
          "for a public bucket"
    env = f"GOOGLE_APPLICATION_CREDENTIALS={path}"
    if not path.is_file():
        raise DchagError(f"{env}: no such file", fix=fix)
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DchagError(f"{env}: not a JSON key file ({type(exc).__name__})", fix=fix) \
            from None
    if not isinstance(key, dict) or "type" not in key:
        raise DchagError(f"{env}: JSON without a credential `type`", fix=fix)


@dataclass(frozen=True)
class RemoteZarr:
    """A zarr store given by URL: what `prep era5` keeps in place of a local path.

    Picklable (decoding processes open their own connection) and hashable (the file cache
    keys on it)."""

    url: str
    timeout_s: float = 60.0  # no byte for this long: the request failed (then retried)
    retries: int = 5  # attempts after the first, with backoff 0.5 s, 1 s, 2 s, …
    first_wait_s: float = 0.5  # the first backoff; each later one doubles, up to 30 s
    # A request not complete after this long failed, however steadily bytes trickle in
    # (a byte every second never trips `timeout_s`); all attempts of one request together
    # stop after RETRY_BUDGET × this, whatever `retries` says.
    deadline_s: float = 600.0

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url

    def describe(self) -> dict[str, Any]:
        return {"url": self.url}

    def open_store(self):
        """A read-only zarr store that retries, counts bytes and explains failures."""
        require("fsspec", f"reading {self.url}", "cloud")
        require("aiohttp", f"reading {self.url}", "cloud")
        from zarr.storage import FsspecStore

        via = _credentials(self.url)
        if via is not None:
            require(via, f"reading the private bucket {self.url}", "cloud")
            import fsspec

            # gcsfs logs each failed request with a traceback; dchag's one line says it
            logging.getLogger("gcsfs").setLevel(logging.CRITICAL)

            fs = fsspec.filesystem("gs" if via == "gcsfs" else "s3", asynchronous=True)
            base = self.url.partition("://")[2].rstrip("/")
        else:
            import aiohttp
            from fsspec.implementations.http import HTTPFileSystem

            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s,
                                            sock_read=self.timeout_s)
            fs = HTTPFileSystem(asynchronous=True, client_kwargs={"timeout": timeout})
            base = https_url(self.url)
        return RetryingStore(FsspecStore(fs, read_only=True, path=base), self)


def explain(exc: BaseException, url: str, key: str) -> tuple[bool, DchagError]:
    """(transient?, the one-line error to raise if it persists)."""
    status = getattr(exc, "status", None)
    where = f"{url}/{key}" if key else url
    if isinstance(status, int):
        if status in (401, 403):
            return False, DchagError(
                f"access denied (HTTP {status})", path=where,
                fix="public stores are read anonymously; for a private bucket set "
                    "GOOGLE_APPLICATION_CREDENTIALS (gs://) or AWS_PROFILE (s3://)")
        if status == 404:
            return False, DchagError("not found (HTTP 404)", path=where,
                                     fix="check the URL (copy it from the store's catalogue)")
        return status in TRANSIENT_STATUS, DchagError(
            f"the server kept failing (HTTP {status})", path=where,
            fix="try again later, or raise --retries")
    name = type(exc).__name__
    if isinstance(exc, asyncio.TimeoutError | TimeoutError) or "Timeout" in name:
        return True, DchagError(f"timed out (no data for the whole --timeout; "
                                f"{bytes_fetched():,} bytes fetched so far)", path=where,
                                fix="check the network, or raise --timeout")
    if "Payload" in name or "Disconnected" in name or isinstance(exc, ConnectionError):
        return True, DchagError(f"the connection broke off ({name})", path=where,
                                fix="try again; raise --retries on a flaky link")
    if "Connector" in name or isinstance(exc, OSError):
        return True, DchagError(f"host unreachable ({str(exc).splitlines()[0][:120]})",
                                path=url, fix="check the URL's host name and the network")
    return False, DchagError(f"could not be read ({name}: {str(exc)[:120]})", path=where)


RETRY_BUDGET = 3  # all attempts of one request: at most this many deadlines


def _too_slow(remote: RemoteZarr, key: str) -> DchagError:
    return DchagError(f"a request did not complete within --deadline {remote.deadline_s:g} s "
                      f"(data arrives, too slowly; {bytes_fetched():,} bytes fetched so far)",
                      path=f"{remote.url}/{key}",
                      fix="raise --deadline on a slow link, or try again later")


class RetryingStore(WrapperStore):
    """A zarr store wrapper: retry transient failures with backoff, count bytes fetched,
    and turn what cannot succeed into a `DchagError` naming the URL."""

    def __init__(self, store, remote: RemoteZarr):
        super().__init__(store)
        self.remote = remote

    def _with_store(self, store):
        return type(self)(store, self.remote)

    async def _retry(self, key: str, call):
        delay = self.remote.first_wait_s
        loop = asyncio.get_running_loop()
        start = loop.time()
        budget = RETRY_BUDGET * self.remote.deadline_s
        for attempt in itertools.count():
            deadline = asyncio.timeout(self.remote.deadline_s)
            try:
                async with deadline:
                    return await call()
            except DchagError:
                raise
            except Exception as exc:  # aiohttp, fsspec and OS errors alike
                transient, error = (True, _too_slow(self.remote, key)) if deadline.expired() \
                    else explain(exc, self.remote.url, key)
                spent = loop.time() - start
                if not transient or attempt >= self.remote.retries or spent >= budget:
                    raise error from exc
            await asyncio.sleep(delay * (0.75 + 0.5 * random.random()))
            delay = min(delay * 2, 30.0)

    async def get(self, key, prototype, byte_range=None):
        buf = await self._retry(key, lambda: self._store.get(key, prototype, byte_range))
        if buf is not None:
            _FETCHED[0] += len(buf)
        return buf

    async def get_partial_values(self, prototype, key_ranges):
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key):
        return await self._retry(key, lambda: self._store.exists(key))

    def __str__(self) -> str:
        return self.remote.url
