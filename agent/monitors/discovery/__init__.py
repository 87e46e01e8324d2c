"""mDNS discovery: the class table, the hardened browser, the device tracker and its presence rules.

Nothing is imported here: reading the ``[discovery]`` config does not load zeroconf.
"""
