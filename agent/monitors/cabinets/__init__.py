"""Charging cabinets: the charging window (``window``), the rules (``rules``), the ``[cabinets]`` config
(``config``), what a meter is and reads (``reading``), the meter clients (``meters``) and the monitor.

Nothing is imported here: the config is read without the meter clients, which only a configured
cabinet loads.
"""
