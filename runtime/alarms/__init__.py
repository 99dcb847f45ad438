"""Alarm management after ISA-18.2, in three rooms.

``manager`` is the library (states, acknowledge, shelve, latching, journal, flood counter) and knows nothing of
tags; ``service`` wires it into the scan (the ``alarms.*`` tags, the ``cmd.alarm_*`` commands SCADA writes,
the retained journal); ``cli`` is ``battplc alarms`` against a running controller.
"""

from runtime.alarms.manager import (
    Alarm,
    AlarmManager,
    AlarmRefused,
    AlarmState,
    JournalEntry,
    Priority,
)

__all__ = ["Alarm", "AlarmManager", "AlarmRefused", "AlarmState", "JournalEntry", "Priority"]
