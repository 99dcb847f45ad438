"""Device drivers: io_map.yaml devices read and written off the scan, one file per driver.

A driver file (modbus.py: Modbus TCP/RTU, vedirect.py: the VE.Direct text protocol) exports ``Driver`` records
(base.py): its own io_map keys and point rules, its connection key, its asyncio links, its simulated device
kind and inline poller. config.py holds the generic io_map rules and ``DRIVERS``, one line per driver file;
keys.py the keys drivers share (serial line); codec.py the register data types and read planner; state.py
one device's qualities, staleness and health counters, shared by manager.py (the asyncio I/O thread and the
scan's Port; the Controller hook) and inline.py (the simulator's in-process Port).
"""
