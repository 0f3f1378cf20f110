"""The load benchmark (``python -m benchmarks.load``, ``make bench-load``): N simulated charge points
on one Core Client against the bare central system; ``__main__`` runs it, ``runs`` and ``daemon`` drive
the two runs, ``fleet`` and ``bare`` are their child processes, ``chain`` the Anvil side, ``proc`` the
child processes, ``report`` the figures."""
