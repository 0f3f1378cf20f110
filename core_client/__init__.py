"""The Core Client: the Charge Point Operator's daemon between OCPP 1.6J charge points and the EV
Network escrow.

Modules (protocol, domain logic and chain I/O apart; the session state machine in one place):

- :mod:`core_client.config`: ``Settings`` from a TOML file and ``EVN_CC_*`` environment variables.
- :mod:`core_client.sessions`: the session state machine and the budget rule (pure).
- :mod:`core_client.store`: SQLite persistence (sessions, transactions, chain jobs, event cursor).
- :mod:`core_client.protocol`: OCPP-J framing, validation with 1.6's error codes, meter values (pure).
- :mod:`core_client.central_system`: ``StationLink``, one charge point's OCPP connection.
- :mod:`core_client.service` (+ :mod:`~core_client.charging`, :mod:`~core_client.ledger`): the session
  service joining OCPP, the state machine, the store and the chain queue.
- :mod:`core_client.chain` / :mod:`core_client.chain_worker`: event watcher and chain worker.
- :mod:`core_client.server`: the websocket server (auth at the handshake) and the control endpoint.
- :mod:`core_client.daemon`: wiring, startup and clean shutdown. :mod:`core_client.cli`: ``core-client``.
"""
