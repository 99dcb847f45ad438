"""The operator page: a browser view of a running controller, served by the controller itself.

Pages (one HTML file, vanilla JS, in ``static/``): overview (SoC, power flows, mode, active steps, alarm
count), live tags with units and quality, each chart drawn with its active step and the why of its
transitions, alarms with acknowledge/shelve and the journal, 24 h trends, parameters with their ranges. Live
over Server-Sent Events.

Rooms: ``live`` (what the scan hands over: samples, trends, the live message), ``actions`` (the write path:
the Modbus server's write checks, the alarm manager), ``http`` (the server, SSE, CSRF and token checks).
``attach(controller)`` is the controller's extension hook; ``site.web`` configures it (README: Operator page).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.http_thread import ServerThread, Serving
from runtime.mqtt.commands import Commands
from runtime.server.access import WritePolicy
from runtime.server.regmap import RegisterMap
from runtime.sfc.diagram import DiagramError, graphviz
from runtime.sfc.model import ChartDecl
from runtime.web.actions import Alarms, TagWriter, WriteRefused
from runtime.web.http import Publisher, WebServer
from runtime.web.live import TREND_PERIOD, Sampler, live_message, tag_meta, why_message

log = logging.getLogger("battplc.web")

MODE_TAG = "cmd.mode"
# Shown on the overview, in this order, when the site has them.
OVERVIEW_TAGS = ("bat.soc", "bat.power", "pv.power", "house.power", "grid.power", "bat.voltage", "bat.current",
                 "bat.cell_v_max", "bat.cell_v_min", "bat.temp_max")


class WebApp(Serving):
    """Everything the page asks for, over one controller's image, charts, alarms and write path."""

    def __init__(self, db: Any, charts: list[ChartDecl], writer: TagWriter, token: bytes | None,
                 why_not_writable: str = "", alarm_service: Any = None) -> None:
        self.db = db
        self.charts = {decl.name: decl for decl in charts}
        self.writer = writer
        self.token = token
        self.writes = {"enabled": token is not None, "why_not": why_not_writable}
        self.sampler = Sampler(db)
        self.alarms = Alarms(db, alarm_service, writer)
        self.publisher = Publisher(self._message, self.sampler.fresh)
        self._published: Any = None  # the sample the last live message was built from
        self._why: tuple[Any, bytes] = (None, b"[]")  # (sample, its why message): one build per sample
        self._diagrams: dict[tuple[str, str | None], bytes] = {}
        self._diagram_lock = threading.Lock()
        self.http = ServerThread("the operator page")

    # ---- scan side ------------------------------------------------------------------------------------------

    def observe(self, scan: Any) -> None:
        """Scan observer: the sample when due."""
        self.sampler.observe(scan)

    # ---- what the page reads ------------------------------------------------------------------------------------

    def _message(self) -> bytes | None:
        sample = self.sampler.sample
        if sample is None or sample is self._published:
            return None
        self._published = sample
        message = live_message(self.db, sample, self.charts.values(), self.alarms.states(sample.values), self.writes)
        return json.dumps(message, separators=(",", ":")).encode()

    def why(self) -> bytes:
        """The why of every chart's transitions over the newest sample (JSON), built once per sample."""
        sample = self.sampler.sample
        with self._diagram_lock:
            if sample is not None and self._why[0] is not sample:
                body = json.dumps(why_message(self.db, sample, self.charts.values()), separators=(",", ":"))
                self._why = (sample, body.encode())
            return self._why[1]

    def meta(self) -> dict[str, Any]:
        defs = self.db.defs
        return {
            "tags": [tag_meta(tag, self.writer.writable(name)) for name, tag in sorted(defs.items())],
            "charts": [{"name": d.name, "description": d.description, "steps": list(d.steps)}
                       for d in self.charts.values()],
            "overview": [name for name in OVERVIEW_TAGS if name in defs],
            "mode": MODE_TAG if MODE_TAG in defs else None,
            "trend_tags": list(self.sampler.trends.tags), "trend_period": TREND_PERIOD,
            "trend_bytes": self.sampler.trends.bytes,
            "writes": self.writes,
        }

    def diagram(self, chart: str, step: str | None) -> tuple[bytes | None, str]:
        """The chart's SVG with ``step`` filled, drawn once per (chart, step)."""
        decl = self.charts.get(chart)
        if decl is None:
            return None, f"no chart {chart!r}; charts: {', '.join(self.charts) or 'none'}"
        if step is not None and step not in decl.steps:
            return None, f"chart {chart} has no step {step!r}"
        key = (chart, step)
        with self._diagram_lock:
            if key not in self._diagrams:
                try:
                    self._diagrams[key] = graphviz(decl, "svg", active=step)
                except DiagramError as error:
                    return None, str(error)
            return self._diagrams[key], ""

    # ---- what the page changes ------------------------------------------------------------------------------

    def act(self, path: str, body: dict[str, Any], client: str) -> tuple[int, dict[str, Any]]:
        """A write from the page: (200, answer) or (status, {"reason": ...}); a refusal changes nothing."""
        try:
            if path == "/api/write":
                name, value = body.get("tag"), body.get("value")
                if not isinstance(name, str) or not isinstance(value, (str, int, float)):
                    return 400, {"reason": 'a write is {"tag": NAME, "value": VALUE}, VALUE a number, a boolean '
                                           'or an enum name'}
                return 200, {"ok": True, "tag": name, "value": self.writer.write(name, value, client)}
            if path == "/api/alarm":
                return 200, self._alarm(body, client)
        except WriteRefused as refused:
            return 409, {"reason": str(refused)}
        return 404, {"reason": f"nothing to write at {path}"}

    def _alarm(self, body: dict[str, Any], client: str) -> dict[str, Any]:
        name, action = body.get("alarm"), body.get("action")
        if not isinstance(name, str):
            raise WriteRefused('an alarm action is {"alarm": NAME, "action": acknowledge|shelve|unshelve}')
        if action == "acknowledge":
            self.alarms.acknowledge(name, client)
        elif action == "shelve":
            seconds = body.get("seconds")
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
                raise WriteRefused("a shelve needs seconds, a number")
            self.alarms.shelve(name, float(seconds), client)
        elif action == "unshelve":
            self.alarms.unshelve(name, client)
        else:
            raise WriteRefused(f"unknown alarm action {action!r}; allowed: acknowledge, shelve, unshelve")
        log.info("web: %s %s alarm %s", client, action, name)
        return {"ok": True, "alarm": name, "action": action}

    # ---- life cycle -----------------------------------------------------------------------------------------

    def serve(self, listen: str, port: int) -> tuple[str, int]:
        address = self.http.start(WebServer((listen, port), self), "web-http")
        self.publisher.start()
        return address

    def stop(self) -> None:
        self.publisher.stop()
        self.http.stop()


def read_token(path: Path) -> tuple[bytes | None, str]:
    """The write token from ``path`` (surrounding whitespace dropped), or None and why not."""
    try:
        token = path.read_bytes().strip()
    except OSError as error:
        return None, f"site.web.token_file {path}: {error.strerror or error}"
    if len(token) < 16:
        return None, f"site.web.token_file {path}: a token needs at least 16 characters"
    return token, ""


def attach(controller: Any) -> Callable[[], None] | None:
    """Serve the operator page when ``site.web.enabled``; return the stop callable.

    As with metrics, a port that cannot be bound is logged and the controller runs on without the page.
    """
    settings = controller.site.settings.web
    if not settings.enabled:
        return None
    token, why_not = None, "writes are enabled by site.web.token_file"
    if settings.token_file:
        path = Path(settings.token_file)
        token, why_not = read_token(path if path.is_absolute() else controller.site.dir / path)
        if token is None:
            where = controller.site.where("web", "token_file")
            log.error("web: %s:%d: %s; the operator page is read-only", where.file, where.line, why_not)
    charts = [p.decl for p in controller.programs if isinstance(getattr(p, "decl", None), ChartDecl)]
    db, server_settings = controller.db, controller.site.settings.server
    commands = Commands(db, RegisterMap.from_tags(db.defs.values()), unit_id=server_settings.unit_id)
    writer = TagWriter(commands, WritePolicy(server_settings.writers))
    app = WebApp(db, charts, writer, token, why_not, alarm_service=getattr(controller, "alarms", None))
    try:
        app.serve(settings.listen, settings.port)
    except OSError as error:
        log.error("web: cannot listen on %s:%s (%s); running without the operator page", settings.listen,
                  settings.port, error.strerror or error)
        return None
    controller.scan.ports.append(commands.writes)
    controller.scan.observers.append(app.observe)
    controller.parts["web"] = app
    log.info("web: operator page on %s%s", app.url, "" if app.writes["enabled"] else " (read-only)")
    return app.stop
