"""Proxy mode: a relay per charge point between its station link and an upstream CSMS."""
