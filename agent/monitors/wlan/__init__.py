"""WLAN monitoring: active probes (``probes``), the UniFi controller adapter (``unifi``) and the
monitor (``monitor``).

The ``[wlan]`` config lives in ``base.agentconfig.wlan`` (central checks a layer with the same
types). Nothing is imported here: the controller adapter is loaded only by a monitor that has a
controller to ask.
"""
