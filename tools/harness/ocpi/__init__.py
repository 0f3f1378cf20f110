"""The OCPI harness: the independent OCPI 2.2.1 peers in tests/interop as processes (peers), our eMSP endpoints
and our CPO interface on real ports (our_emsp, our_cpo), OCPI objects written from the specification (objects)."""
