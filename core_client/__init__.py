"""The Core Client: the Charge Point Operator's daemon between OCPP 1.6J charge points and the EV
Network escrow.

Data goes one way (see docs/architecture.md, "Core Client modules"): charge point ->
:mod:`~core_client.central_system` (OCPP in and out, on :mod:`~core_client.ocpp_adapter`) ->
:mod:`~core_client.service` (reads, applies) -> :mod:`~core_client.domain` (pure decisions, returning
:mod:`~core_client.decisions`) -> :mod:`~core_client.store` (sessions, job queue) ->
:mod:`~core_client.chain_worker` -> chain; chain events -> :mod:`~core_client.chain` (watcher) ->
service -> :mod:`~core_client.reconcile` (RemoteStart/Stop) -> the links.

- :mod:`core_client.sessions`: the session state machine and the budget rule (pure);
  :mod:`core_client.jobs`: job kinds and statuses (pure).
- :mod:`core_client.protocol`: OCPP-J framing, validation with 1.6's error codes, meter values (pure).
- :mod:`core_client.config`: ``Settings`` from a TOML file and ``EVN_CC_*`` environment variables.
- :mod:`core_client.server`: the websocket server (auth at the handshake) and the control endpoint.
- :mod:`core_client.daemon`: wiring by composition, startup and clean shutdown. :mod:`core_client.cli`: ``core-client``.
"""
