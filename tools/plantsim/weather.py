"""A synthetic weather year for long replays: seasons, clouds, a house's day, as a recording (recording.py).

Deterministic (one seeded generator, no clock): the same arguments give the same samples, so a year replay is
reproducible to the byte. The shapes, per day ``d`` of the year (0 = 1 January, a site around 50 degN):

- day length 12 h +- 4 h (longest at the June solstice), centred on 13:30 local time; clear-sky PV peak
  ``peak_w`` x (0.55 + 0.45 x season) with season 0 at the winter solstice and 1 in June, the clear-day
  shape sin(pi x) ** 1.3 (as profiles.clear_sky);
- cloud cover per day from an AR(1) walk (persistent weather: grey weeks, sunny spells), cloudier in winter,
  flickering within the day over half-hour knots: PV x (1 - cover x (0.4 + 0.6 u));
- house load 180 W base, +450 W 06:30-08:30, +700 W 17:30-22:00, 35 % more in winter, +-10 % per sample;
- ambient (a garage or cellar) 12 - 8 cos(season) degC, +-3 degC over the day (warmest at 15:00).

``python -m tools.plantsim.weather OUT.csv [--days N]`` writes it as a recording for ``battplc replay``.
"""

from __future__ import annotations

import argparse
import math
import random
from datetime import datetime
from pathlib import Path

from tools.plantsim.recording import Recording, Sample

DAY_S = 86400.0
SOLSTICE = 172  # day of the year of the June solstice


def synthetic_year(days: int = 365, step_s: float = 600.0, seed: int = 17, peak_w: float = 4000.0,
                   start: datetime = datetime(2026, 1, 1)) -> Recording:
    """``days`` of samples every ``step_s`` seconds from ``start`` (1 January: the year's first day)."""
    rng = random.Random(seed)
    per_day = int(round(DAY_S / step_s))
    pv: list[Sample] = []
    house: list[Sample] = []
    ambient: list[Sample] = []
    cover = 0.5
    for d in range(days):
        season = 0.5 + 0.5 * math.cos(2.0 * math.pi * (d - SOLSTICE) / 365.0)  # 1 in June, 0 in December
        length = (12.0 + 4.0 * (2.0 * season - 1.0)) * 3600.0
        sunrise = 13.5 * 3600.0 - length / 2.0
        peak = peak_w * (0.55 + 0.45 * season)
        cover = min(1.0, max(0.0, 0.7 * cover + 0.3 * rng.random() + 0.08 * (0.5 - season)))
        knots = [rng.random() for _ in range(49)]  # half-hour cloud knots
        winter = 1.0 + 0.35 * (1.0 - season)
        for k in range(per_day):
            tod = k * step_s
            t = d * DAY_S + tod
            x = (tod - sunrise) / length
            power = 0.0
            if 0.0 < x < 1.0:
                i, f = divmod(tod / 1800.0, 1.0)
                u = knots[int(i)] + (knots[int(i) + 1] - knots[int(i)]) * f
                power = peak * math.sin(math.pi * x) ** 1.3 * (1.0 - cover * (0.4 + 0.6 * u))
            load = 180.0 + (450.0 if 6.5 * 3600 <= tod < 8.5 * 3600 else 0.0) \
                + (700.0 if 17.5 * 3600 <= tod < 22.0 * 3600 else 0.0)
            load *= winter * (0.9 + 0.2 * rng.random())
            temp = 12.0 - 8.0 * (1.0 - 2.0 * season) + 3.0 * math.cos(2.0 * math.pi * (tod - 15 * 3600) / DAY_S)
            pv.append(Sample(t, round(power, 1)))
            house.append(Sample(t, round(load, 1)))
            ambient.append(Sample(t, round(temp, 2)))
    return Recording(Path(f"synthetic-year-{seed}.csv"), start, pv, house, ambient)


def write_csv(recording: Recording, path: Path) -> None:
    """The recording as a CSV ``battplc replay`` reads (time in seconds from the start)."""
    assert recording.ambient is not None
    with path.open("w", encoding="utf-8") as out:
        out.write(f"# synthetic weather (tools/plantsim/weather.py), from {recording.start:%Y-%m-%d}\n")
        out.write("time,pv.power,house.power,ambient\n")
        for p, h, a in zip(recording.pv, recording.house, recording.ambient, strict=True):
            out.write(f"{p.t:g},{p.value:g},{h.value:g},{a.value:g}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plantsim.weather", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="CSV file to write")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    write_csv(synthetic_year(days=args.days, seed=args.seed), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
