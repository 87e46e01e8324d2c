"""Black-box conformance suite: checks docs/protocol.md and the commands from outside.

It shares no code with the project.
"""
