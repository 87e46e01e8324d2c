"""Monitors: host (psutil) and the site monitors (discovery, WLAN, cabinets)."""
