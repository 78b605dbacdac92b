"""Anomalous access: rules over the audit log, raised as audit events, metrics and operator alerts.

    rules.py      what counts as anomalous (one function per rule, reads only)
    refusals.py   Valkey counters of the refusals the audit log does not hold (401, 429)
    detector.py   the periodic run: rules -> not raised recently -> `anomaly.detected` -> alert
    alerts.py     the operator's webhook and the metric hook

docs/AUDIT.md ("Anomalous access") lists the rules, their settings and defaults.
"""
