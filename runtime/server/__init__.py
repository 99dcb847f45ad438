"""The Modbus/TCP server for SCADA and HMIs: every tag with a ``modbus`` mapping in tags.yaml and every tag the
runtime makes for itself (heartbeat, chart steps, device health, program faults), each with a quality register,
over the image.

Rooms: ``regmap`` (tags.yaml -> register map, encoding, the operator's map), ``image`` (the encoded register
image reads are answered from, and the queue writes wait in until the next latch), ``protocol`` (MBAP
framing and function code -> table -> tag), ``access`` (allowlist, connection cap, idle timeout, TLS),
``server`` (thread, loop, listeners, scan wiring), ``cli`` (``battplc regmap|get|set``).

``attach(controller)`` is the controller's extension hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from runtime.server.regmap import Point, RegisterMap
from runtime.server.server import Server

log = logging.getLogger("battplc.server")

__all__ = ["Point", "RegisterMap", "Server", "attach"]


def attach(controller: Any) -> Callable[[], None] | None:
    """Start the server for a controller if ``site.server.enabled``; return its stop function.

    The server runs on its own thread; its write queue becomes a scan port and its image refresh a scan
    observer. If it cannot listen (port taken, bad certificate), the error is logged and the controller
    runs on without it: battery control matters more than SCADA access.
    """
    settings = controller.site.settings.server
    if not settings.enabled:
        return None
    try:
        server = Server(controller.db, settings, base_dir=controller.site.dir)
        if controller.shadow:
            server.handler.read_only = "shadow mode: writes are refused"
        server.start()
    except (OSError, ValueError) as exc:  # ValueError: more runtime tags than their register blocks hold
        log.error("Modbus server not started: %s (check site.server listen/port/tls in tags.yaml)", exc)
        return None
    controller.scan.ports.append(server.port)
    controller.scan.observers.append(server.observe)
    controller.parts["server"] = server
    return server.stop
