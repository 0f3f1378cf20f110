"""The Core Client's OCPI 2.2.1 CPO interface (issue 20 part 3): roaming eMSPs and hubs register with us
(a token A from ``core-client ocpi issue-token``), pull our Locations and Tariffs, take our pushes and send
commands for their tokens. It reuses the role-free OCPI layer (models, transport, request handling, client)
of :mod:`core_client.ocpi`; the eMSP side's own modules stay apart."""
