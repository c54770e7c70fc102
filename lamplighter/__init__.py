"""Lamplighter, the application: the command line and the wiring of a process (controller, API,
simulators). The one package that puts `api`, `controller` and `simulators` together."""
