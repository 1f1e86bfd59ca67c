"""Telemetry: the platform's Prometheus metrics (`metrics.py`) and its OpenTelemetry tracing
helpers (`tracing.py`). A leaf like config/: any layer but the domain may use it; it imports
nothing of flp's. Both cost next to nothing when nobody scrapes or no collector is configured."""
