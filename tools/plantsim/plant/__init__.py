"""The plant: a physical model of the battplc site, split along its concerns (cells, pack, BMS, charger,
inverter, shunt, meter, sensor faults, the oracle, the site). ``tools.plantsim.model`` is its public face."""
