"""pamcore-cisco-legacy: opt-in legacy SSH algorithms for old Cisco devices, per resource."""

__version__ = "0.1.0"
