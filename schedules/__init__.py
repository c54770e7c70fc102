"""Pure, deterministic schedule logic (programs, astronomical clock, calendars, overrides → target
level at an instant) and the APScheduler runner that fires at transitions.

Arrives with the schedules issue; nothing here yet.
"""
