"""MQTT for home automation: every public tag on a broker, Home Assistant discovery, commands.

Rooms: ``settings`` (the ``mqtt:`` block of tags.yaml), ``discovery`` (tag -> Home Assistant entity, by unit
and name rules), ``commands`` (a command payload through the Modbus server's own write checks), ``bridge``
(the client thread and its scan observer; ``attach(controller)`` is the controller's extension hook).
"""
