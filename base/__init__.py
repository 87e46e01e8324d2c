"""What agent and central both use that is neither wire format nor one side's logic.

CLI plumbing (:mod:`base.cli`), the error base for configuration (:mod:`base.errors`), the
declarative TOML loader (:mod:`base.config`), owner-only secret files (:mod:`base.secretfile`),
SQLite connections and migrations (:mod:`base.sqlite`), the one clock (:mod:`base.clock`),
the one failure limiter (:mod:`base.ratelimit`) and the one version (:mod:`base.version`).
It imports only ``protocol`` and libraries; agent and central never import each other
(``tests/protocol/test_layering.py`` checks).
"""
