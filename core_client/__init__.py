"""The Core Client: the Charge Point Operator's daemon between OCPP 1.6J charge points and the EV
Network escrow.

Data goes one way (see docs/architecture.md, "Core Client modules"): charge point ->
:mod:`~core_client.ocpp` (the websocket server, one station link per charge point) ->
:mod:`~core_client.sessions` (the service reads, the pure decisions decide, the service applies) ->
:mod:`~core_client.storage` (sessions, job queue) -> :mod:`~core_client.chain` (worker) -> chain;
chain events -> :mod:`~core_client.chain` (watcher) -> the session service -> the reconcile loop
(RemoteStart/Stop) -> the links.

- :mod:`core_client.proxy`: proxy mode, a relay per charge point to the CPO's own CSMS.
- :mod:`core_client.records`: the transaction record (hash-linked log, anchoring).
- :mod:`core_client.web`: the HTTP front ends (drivers' live data, the CPO dashboard).
- :mod:`core_client.cli`: ``core-client``; :mod:`core_client.config`: ``Settings`` (TOML file and
  ``EVN_CC_*`` variables); :mod:`core_client.daemon`: wiring by composition, startup and clean shutdown;
  :mod:`core_client.errors`: the error base.
"""
