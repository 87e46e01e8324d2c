"""The incident engine: signals from the monitors in, incidents and their events out."""
