"""The plant simulator: the default site without a battery, for `make run`, `battplc sim` and the tests.

Rooms: ``model`` (the physics: cells, BMS, shunt, charger, inverter, meter), ``profiles`` (PV, house and
ambient over the day), ``devices`` (the plant as register banks and VE.Direct frames, built from io_map.yaml,
with fault injection), ``serve`` (those devices on loopback Modbus TCP and a pty, in real time), ``demo``
(`battplc demo`: served plant + the controller), ``scenario`` (scenario files), ``sim`` (`battplc sim`: plant
and controller on a simulated clock), ``plot`` (the PNG of a run), ``cli`` (the two sub-commands).
"""
