"""The plant simulator: the default site without a battery, for `make run`, `battplc sim` and the tests.

Rooms: ``plant/`` (the physics, one module per concern: cells, pack, bms, charger, inverter, shunt, meter,
sensors, oracle, plant; ``model`` is its public face), ``events`` (scenario faults and plant events, shared
by sim and demo), ``profiles`` (PV, house and
ambient over the day), ``devices`` (the plant as register banks and VE.Direct frames, built from io_map.yaml,
with fault injection), ``serve`` (those devices on loopback Modbus TCP and a pty, in real time), ``demo``
(`battplc demo`: served plant + the controller), ``scenario`` (scenario files), ``sim`` (`battplc sim`: plant
and controller on a simulated clock), ``plot`` (the PNG of a run), ``cli`` (the two sub-commands).
"""
