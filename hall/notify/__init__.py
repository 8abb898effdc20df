"""Citizen notifications (Q6, Q11, D11, G6): rules turn what happens in the hall
into messages, an outbox keeps them until a gateway has taken them.

- ``settings``: the ``[notifications]`` table of the hall file.
- ``templates``: placeholders in texts and request templates.
- ``gateways``: the adapters (HTTP with a request template, log-only).
- ``rules``: which messages an event, a booking or a case step makes.
- ``contacts``: a citizen's own channel choice and WeChat openid.
- ``outbox``: the ``outbox`` and ``outbox_attempts`` tables.
- ``intake``: reading the event log and the intake table into the outbox.
- ``sender``: delivery with retry and backoff.
- ``service``: all of it, started and stopped with the hall server.
"""
