"""A network shaper in front of the lab's S3: S3's first-byte latency and per-connection bandwidth, and a cap on the
function's total network share, on loopback.

An asyncio TCP proxy on 127.0.0.1 (its own thread and event loop) forwards every connection to SeaweedFS and
shapes what comes back:

- **first-byte latency**: the first byte of each answer leaves no earlier than ``first_byte`` after its request
  arrived (a request is the client's bytes after the previous answer began; SDKs do not pipeline);
- **per-connection bandwidth**: each connection's answers flow at ``per_connection`` bytes/s at most;
- **aggregate bandwidth**: all connections together flow at ``aggregate`` bytes/s at most (the function's network
  share; the lab runs one function).

Rates are enforced with virtual clocks (a link is busy until T; each chunk of at most 256 KiB moves T on by its
transfer time and waits until both its connection's and the aggregate's T; a wake-up up to 10 ms late is made up
by the next chunks, an idle link starts afresh), so the long-run rate is exact and never exceeded. Requests flow upstream unshaped (model fetches are GETs).
The figures of the ``aws`` preset and their sources are in docs/lab.md ("S3 over a shaped network").
Standard library only; the lab imports none of the serving code.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass

from coldbrew.durations import parse_duration
from coldbrew.errors import ConfigError

CHUNK = 256 * 1024
BURST_S = 0.010
MB = 1_000_000


@dataclass(frozen=True)
class NetworkProfile:
    """How the lab's S3 behaves on the network: rates in bytes/s (0: unlimited), first-byte latency in seconds."""

    name: str
    per_connection: float
    aggregate: float
    first_byte: float

    def describe(self) -> str:
        def rate(v: float) -> str:
            return "unlimited" if not v else f"{v / MB:g} MB/s"

        return (
            f"{self.name}: {rate(self.per_connection)} per connection, {rate(self.aggregate)} in all, "
            f"first byte {self.first_byte * 1000:g} ms"
        )


# docs/lab.md gives each figure's source: AWS's 85-90 MB/s per connection (lower end), an estimated 50 ms first
# byte, an estimated 200 MB/s network share for a 4,500 MB function.
PRESETS = {"aws": NetworkProfile("aws", 85 * MB, 200 * MB, 0.050)}
NETWORKS = ("aws", "none")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(i?)b?(?:/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str | float | int, *, option: str = "--s3-bandwidth") -> float:
    """Bytes per second from ``"85MB"``, ``"85MB/s"``, ``"1.5GB"``, ``"512KiB"`` or a bare number of bytes/s.

    Decimal units (kB = 1000, MB = 10^6, GB = 10^9) as network rates are quoted; ``KiB``/``MiB``/``GiB`` are binary.
    Raises ConfigError naming ``option`` for anything else, or a rate that is not positive.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _SIZE.match(str(text))
        if not m:
            raise ConfigError(f"{option} {text!r}: not a rate; use a size per second, e.g. 85MB, 1.5GB, 512KiB")
        power = {"": 0, "k": 1, "m": 2, "g": 3}[m.group(2).lower()]
        value = float(m.group(1)) * ((1024 if m.group(3) else 1000) ** power)
    if not value > 0:
        raise ConfigError(f"{option} {text!r}: must be positive")
    return value


def network_profile(
    network: str,
    *,
    bandwidth: str | float | None = None,
    first_byte: str | float | None = None,
    aggregate: str | float | None = None,
) -> NetworkProfile | None:
    """The profile for ``network`` (``aws`` or ``none``), with explicit figures overriding the preset's.

    ``none`` is loopback as it is (no shaper), unless a figure is given: then only that figure is shaped.
    Raises ConfigError for an unknown network or an invalid figure.
    """
    if network not in NETWORKS:
        raise ConfigError(f"--s3-network must be one of {', '.join(NETWORKS)}, not {network!r}")
    base = PRESETS.get(network, NetworkProfile("none", 0.0, 0.0, 0.0))
    if network == "none" and bandwidth is None and first_byte is None and aggregate is None:
        return None
    per_connection = base.per_connection if bandwidth is None else parse_rate(bandwidth, option="--s3-bandwidth")
    total = base.aggregate if aggregate is None else parse_rate(aggregate, option="--s3-aggregate")
    latency = base.first_byte if first_byte is None else parse_duration(first_byte, option="--s3-first-byte")
    custom = (bandwidth, first_byte, aggregate) != (None, None, None)
    return NetworkProfile(f"{network}{' (overridden)' if custom else ''}", per_connection, total, latency)


class _Link:
    """A virtual clock: the link is busy until ``until`` (event-loop time)."""

    __slots__ = ("rate", "until")

    def __init__(self, rate: float):
        self.rate, self.until = rate, 0.0

    def reserve(self, now: float, n: int) -> float:
        """Book ``n`` bytes; the time they have finished crossing the link.

        A link busy until a moment at most ``BURST_S`` ago was held up by a late wake-up: its bytes go on from
        that moment (the lateness is made up). A link idle for longer starts now, with no credit.
        """
        if not self.rate:
            return now
        start = self.until if self.until >= now - BURST_S else now
        self.until = start + n / self.rate
        return self.until


class S3Shaper:
    """The shaping proxy: ``start()`` listens on 127.0.0.1 (a free port), ``url`` is its endpoint, ``stop()`` ends
    it and every connection. A context manager.

    Args:
        upstream: ``(host, port)`` of the S3 server.
        profile: the figures to enforce.
    """

    def __init__(self, upstream: tuple[str, int], profile: NetworkProfile):
        self.upstream, self.profile = upstream, profile
        self.port: int | None = None
        self.requests = 0  # answers whose first byte was released
        self.bytes_down = 0
        self._aggregate = _Link(profile.aggregate)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Shaper:
        if self._loop is not None:
            return self
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="coldbrew-s3-shaper", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), loop)
        try:
            future.result(10)
        except BaseException:
            self.stop()
            raise
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=4 * CHUNK)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close the listener and every connection; idempotent."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if loop.is_running():

            async def close() -> None:
                if self._server is not None:
                    self._server.close()
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(close(), loop).result(10)
            except Exception:  # noqa: BLE001 - stopping anyway
                pass
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self.port = None

    def __enter__(self) -> S3Shaper:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- one connection ------------------------------------------------------------------------------------
    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_r, up_w = await asyncio.open_connection(*self.upstream, limit=4 * CHUNK)
            except OSError:
                return
            state = {"request_at": None}
            upward = asyncio.ensure_future(self._requests(client_r, up_w, state))
            try:
                await self._answers(up_r, client_w, state)
            finally:
                upward.cancel()
                await asyncio.gather(upward, return_exceptions=True)
                up_w.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a connection dropped, or the shaper stopping: the task ends quietly either way
        finally:
            client_w.close()
            self._tasks.discard(task)

    async def _requests(self, client_r, up_w, state) -> None:
        """Client to S3, unshaped; marks when each request begins."""
        loop = asyncio.get_running_loop()
        try:
            while data := await client_r.read(CHUNK):
                if state["request_at"] is None:
                    state["request_at"] = loop.time()
                up_w.write(data)
                await up_w.drain()
            if up_w.can_write_eof():
                up_w.write_eof()
        except OSError:
            up_w.close()

    async def _answers(self, up_r, client_w, state) -> None:
        """S3 to client: each answer's first byte held back, then the bytes paced by both links."""
        loop = asyncio.get_running_loop()
        link = _Link(self.profile.per_connection)
        while data := await up_r.read(CHUNK):
            if state["request_at"] is not None:
                wait = state["request_at"] + self.profile.first_byte - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                state["request_at"] = None
                self.requests += 1
            now = loop.time()
            done = max(link.reserve(now, len(data)), self._aggregate.reserve(now, len(data)))
            if done > now:
                await asyncio.sleep(done - now)
            self.bytes_down += len(data)  # counted before the client can see the bytes (readers on other threads)
            client_w.write(data)
            await client_w.drain()
