"""OCPI 2.2.1 for the Core Client: the bridge to a CPO's CSMS as one more eMSP (issue 18), and later the
Core Client's own CPO interface (issue 20), on one transport layer.

- :mod:`.models`: the 2.2.1 objects, validated as the specification's tables say.
- :mod:`.transport`: envelope, status codes, Authorization, message ids, routing headers, pagination.
- :mod:`.client`: our HTTP client (retries within a time budget, follows pagination links).
- :mod:`.tariffs`: an OCPI Tariff as the chain's tariff, exactly or refused naming the part.
- :mod:`.errors`: :class:`~.errors.OcpiError` and its kinds.
"""
