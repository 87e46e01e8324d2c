"""Charging cabinets: the rules (``rules``), what a meter reading is (``reading``), the meter clients
(``meters``) and the monitor (``monitor``).

The ``[cabinets]`` config and the charging window live in ``base.agentconfig`` (central checks a
layer with the same types). Nothing is imported here: the meter clients load only with a configured
cabinet.
"""
