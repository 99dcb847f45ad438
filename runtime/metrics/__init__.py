"""Prometheus exposition: tag values, qualities and the controller's own figures on ``/metrics``.

The scan never waits for a scrape. ``MetricsExporter.observe`` runs in the commit phase of every scan: it counts
the scan's lateness and duration into histogram buckets kept in plain Python (one bisect and two additions) and,
at most once per ``snapshot_interval`` of scan time, swaps in a new ``Snapshot`` (copies of the value and quality
dicts plus the bucket counts). The HTTP thread reads only the newest snapshot, one reference: a scrape shows the
image of one commit, never a staged value and never a half-finished scan.

A scrape must be cheap, as it shares the GIL with the scan: the labelled runtime families go through a
prometheus_client custom collector, while the one-family-per-tag bulk is written from lines prepared once per
tag (``TagText``), about ten times faster than building a prometheus_client object per sample.

Names follow the Prometheus conventions. A tag becomes ``battplc_`` + its name with dots as underscores + its
base unit: V and mV -> ``_volts``, A/mA -> ``_amperes``, W/kW -> ``_watts``, Wh/kWh -> ``_joules``, Ah/mAh ->
``_coulombs``, % -> ``_percent``, degC -> ``_celsius``, s/ms/min/h/day -> ``_seconds``, Hz -> ``_hertz``,
ohm/mohm -> ``_ohms``, values scaled to match. A last name part that spells the tag's unit is dropped
(``par.unload_settle_s`` -> ``battplc_par_unload_settle_seconds``); a name ending in the unit and ``_s`` is a
rate per second (``par.current_ramp_a_s`` -> ``battplc_par_current_ramp_amperes_per_second``); other parts
that abbreviate a unit are spelled out. Booleans are 0/1 gauges; enums are the gauge of their code, the codes
listed in the HELP text. Counters (``_total``, in base units) are the read-only, retained tags that only grow:
an integer with unit ``count`` (``interlock.trips``) or a tag whose last name part ends in ``total``
(``energy.pv_total``, kWh -> ``battplc_energy_pv_joules_total``). Other counts, measured anew at each start
(``bms.online``), and counters that restart (``energy.pv_today``) are gauges. A tag with quality
BAD or INIT shows NaN (there is no reading to trust), and ``battplc_tag_quality{tag}`` tells why (0 GOOD,
1 STALE, 2 BAD, 3 INIT). Tags declared with ``metric: false`` are left out.

Runtime namespaces have families with labels instead of one family per tag:

- ``scan.*``: ``battplc_scans_total``, ``battplc_scan_overruns_total``, ``battplc_scan_skipped_slots_total``,
  ``battplc_scan_period_seconds``, histograms ``battplc_scan_duration_seconds`` and
  ``battplc_scan_lateness_seconds``
- ``sfc.<chart>.step`` / ``.step_time`` / ``.held``: ``battplc_sfc_step{chart,step}`` (1 for the active step,
  0 for the others), ``battplc_sfc_step_code{chart}``, ``battplc_sfc_initial_step_active{chart}``,
  ``battplc_sfc_step_time_seconds{chart}``, ``battplc_sfc_held{chart}``
- ``dev.<device>.up`` / ``.reachable`` / ``.errors`` / ``.errors.<kind>`` or ``.errors_<kind>`` / ``.last_good``:
  ``battplc_device_up{device}``, ``battplc_device_reachable{device}``, ``battplc_device_errors_total{device,kind}``
  (kind ``all`` when the device has no per-kind counters), ``battplc_device_last_good_timestamp_seconds{device}``
- ``prog.<program>.fault`` / ``.faults``: ``battplc_program_fault{program}``,
  ``battplc_program_faults_total{program}``
- ``alarm.<name>`` (booleans): ``battplc_alarm_active{alarm}``
- the Modbus server's ``stats`` (see ``server_families``): ``battplc_modbus_requests_total{function,result}``,
  ``battplc_modbus_exceptions_total{kind}``, one counter per other figure (``battplc_modbus_writes_refused_total``,
  ``battplc_modbus_connections_partial_closed_total``, ``battplc_modbus_connections_evicted_total``, ...), and the
  gauge ``battplc_modbus_connections_peak``
- the MQTT bridge (see ``mqtt_families``): the gauge ``battplc_mqtt_connected``, ``battplc_mqtt_connects_total``,
  ``battplc_mqtt_disconnects_total``, ``battplc_mqtt_publish_cycles_total``, ``battplc_mqtt_cycles_skipped_total``,
  ``battplc_mqtt_messages_published_total``, ``battplc_mqtt_entities_removed_total``,
  ``battplc_mqtt_commands_total{result}``

The package, one concern a module: ``names`` (family names, HELP), ``plan`` (which family each tag goes to),
``snapshot`` (what the scan hands over), ``families`` (a scrape's body), ``exporter`` (the scan observer,
the HTTP endpoint and the Controller hook ``attach``).
"""

from runtime.metrics.exporter import MetricsExporter, attach
from runtime.metrics.families import mqtt_families, server_families
from runtime.metrics.names import metric_name
from runtime.metrics.plan import build_plan

__all__ = ["MetricsExporter", "attach", "build_plan", "metric_name", "mqtt_families", "server_families"]
