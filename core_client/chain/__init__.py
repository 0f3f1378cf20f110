"""Chain I/O: the job queue to escrow transactions (worker), escrow events in (watcher), onboarding."""
