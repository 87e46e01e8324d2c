"""Alert routing at central: incidents → rules → e-mail, signed webhooks and Zammad tickets.

``config`` (the [alerts] section), ``router`` (incidents to threads and queued messages, in the
database), ``delivery`` (the worker, backoff, dead letters), ``channels`` (SMTP, webhook, Zammad),
``schedule`` (quiet hours, holidays from ICS), ``wording`` (what a message says), ``service``
(all of it put together for `serve` and the CLI).
"""
