"""WLAN monitoring: the ``[wlan]`` config (``config``), active probes (``probes``), the UniFi controller
adapter (``unifi``) and the monitor (``monitor``).

Nothing is imported here: the config is read without the monitor, and the controller adapter is
loaded only by a monitor that has a controller to ask.
"""
