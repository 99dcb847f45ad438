"""The plant model's public face: ``Plant`` and ``PlantConfig`` plus the cell curve, as the simulator, the
register server and the tests import them. The model lives in ``tools.plantsim.plant`` (one module per
concern: cells, pack, bms, charger, inverter, shunt, meter, sensors, oracle, plant)."""

from tools.plantsim.plant.bms import Bms
from tools.plantsim.plant.cells import OCV_MID, Cell, ocv, soc_from_ocv
from tools.plantsim.plant.charger import Charger
from tools.plantsim.plant.config import PlantConfig
from tools.plantsim.plant.inverter import Inverter
from tools.plantsim.plant.pack import Pack
from tools.plantsim.plant.plant import Plant
from tools.plantsim.plant.shunt import Shunt

__all__ = ["OCV_MID", "Bms", "Cell", "Charger", "Inverter", "Pack", "Plant", "PlantConfig", "Shunt", "ocv",
           "soc_from_ocv"]
