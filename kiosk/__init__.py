"""Field Kiosk: the village point box and its county centre."""

__version__ = "0.1.0"
