"""Device drivers: io_map.yaml devices read and written off the scan, one file per driver.

config.py (io_map.yaml schema and loading), base.py (the driver interface, health, the in-process port),
codec.py (register data types and the read planner), modbus.py (Modbus TCP/RTU), vedirect.py (VE.Direct
text protocol), manager.py (the asyncio I/O thread and the scan's Port; the Controller hook).
"""
