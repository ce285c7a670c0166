"""The tables a run replicates: the config's `tables`, and those `discover:` finds (bridge/source/catalog.py).

The tables are found once before the run starts, then again every `source.discovery_interval_s` on a thread
of their own, so slow or throttled listings never hold up replication; a discovery that fails is logged and
changes nothing. The pipeline asks `due()` while it runs:
- a table found for the first time is due at once: the run commits and starts again with it (its stream is read
  from the template's `start_position`, or its snapshot taken, as for a table named at start);
- a table no longer found (tag removed, renamed, deleted, excluded) is drained first: its stream keeps being
  read until its watermark passes the moment it was missed, so every change made while it was still found is
  delivered; then the run starts again without it. Its checkpoint is kept: found again, it resumes there.
A table that comes back before it is drained simply stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bridge.config import Config
from bridge.errors import BridgeError
from bridge.ops import metrics
from bridge.source.catalog import TableCatalog

log = logging.getLogger(__name__)


class TableSet:
    """The run's tables; `catalog` is None without `discover:` (then the set never changes)."""

    def __init__(self, config: Config, catalog: TableCatalog | None, wall_clock: Callable[[], float] = time.time):
        self.config = config
        self.catalog = catalog
        self.wall_clock = wall_clock
        self.found: list[str] = []  # the found tables the run replicates, sorted
        self.latest: set[str] | None = None  # what the last discovery found (guarded by `lock`)
        self.leaving: dict[str, float] = {}  # found tables missed, and when (epoch ms); pipeline thread only
        self.drained: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Config:
        """Find the tables (raises what `TableCatalog.find` raises), start finding them again in the background,
        and return the config of the run: `tables` and the tables found with the template's settings."""
        if self.catalog is None:
            return self.config
        self.found = self.catalog.find()
        log.info("discover found %d table(s): %s", len(self.found), ", ".join(self.found) or "none")
        self.thread = threading.Thread(target=self._rediscover, name="table-discovery", daemon=True)
        self.thread.start()
        return self._config()

    def due(self, watermark: Callable[[str], float]) -> bool:
        """A table was found, or one no longer found is drained (`watermark(table)`: how far its stream was
        handed on, epoch ms): the run should start again with `apply()`."""
        with self.lock:
            latest = self.latest
        if latest is None:
            return False
        now_ms = self.wall_clock() * 1000
        for name in self.found:
            if name not in latest and name not in self.leaving:
                self.leaving[name] = now_ms
                log.info("table %s is no longer found by discover: its stream is read up to now, then no more", name)
            elif name in latest and self.leaving.pop(name, None) is not None:
                log.info("table %s is found by discover again: it stays", name)
        self.drained = {name for name, since in self.leaving.items() if watermark(name) >= since}
        return bool(latest - set(self.found) or self.drained)

    def apply(self) -> Config:
        """The run's config with the tables found since and without the drained ones (call after `due()`)."""
        with self.lock:
            latest = set(self.latest or ())
        for name in sorted(latest - set(self.found)):
            log.info("table %s found by discover: replicating it", name)
        for name in sorted(self.drained):
            log.info("table %s removed: every change until it was no longer found was delivered", name)
            del self.leaving[name]
            metrics.table_removed(name)
        self.found = sorted((set(self.found) | latest) - self.drained)
        self.drained = set()
        return self._config()

    def close(self) -> None:
        """Stop finding tables (a discovery under way is not waited for)."""
        self.stopping.set()

    def _config(self) -> Config:
        metrics.tables_found(len(self.found))
        return self.config.with_found(self.found)

    def _rediscover(self) -> None:
        interval = self.config.source.discovery_interval_s
        while not self.stopping.wait(interval):
            try:
                names = set(self.catalog.find())
            except BridgeError as error:  # throttled, denied, malformed: nothing changes until one succeeds
                log.warning("finding the tables of `discover` failed (the tables stay as they are): %s", error)
                continue
            except Exception as error:  # not a known failure of AWS: logged louder, and tried again all the same
                log.error("finding the tables of `discover` failed (the tables stay as they are): %r", error)
                continue
            with self.lock:
                self.latest = names
