"""Simulated lamp physics and faults, with explicit times (no sleeping)."""

from __future__ import annotations

import random

import pytest

from simulators.lamp import AMBIENT_C, Fault, LampModel


def lamp(**kw: object) -> LampModel:
    model = LampModel(unit_id=1, rated_power_w=100, rng=random.Random(1), _last=0.0, **kw)  # type: ignore[arg-type]
    model.on_cmd = True
    return model


def test_power_follows_level_and_rating() -> None:
    m = lamp()
    m.level_cmd = 40
    assert m.power_w() == pytest.approx(40)
    m.level_cmd = 100
    assert m.power_w() == pytest.approx(100)
    m.on_cmd = False
    assert m.power_w() == 0


def test_energy_and_burning_hours_integrate_over_time() -> None:
    m = lamp()
    m.level_cmd = 50
    m.advance(0.0)
    m.advance(3600.0)  # one hour at 50 W
    assert m.energy_wh == pytest.approx(50)
    assert m.burning_h == pytest.approx(1)
    m.on_cmd = False
    m.advance(7200.0)
    assert m.energy_wh == pytest.approx(50)  # nothing while off
    assert m.burning_h == pytest.approx(1)


def test_temperature_follows_load_first_order() -> None:
    m = lamp()
    m.level_cmd = 100
    m.advance(0.0)
    m.advance(600.0)  # one time constant
    rise = m.temperature_c - AMBIENT_C
    assert rise == pytest.approx(30 * (1 - 2.718281828**-1), rel=0.01)
    m.advance(10_000.0)
    assert m.temperature_c == pytest.approx(AMBIENT_C + 30, abs=0.1)


def test_faults_change_what_the_lamp_reports() -> None:
    m = lamp()
    m.level_cmd = 80
    m.faults.add(Fault.LAMP_FAILURE)
    assert m.power_w() < 1
    assert "lamp_failure" in m.status_flags()
    m.faults = {Fault.RELAY_FAULT}
    assert m.actual_level() == 0
    assert not m.relay_closed()
    assert "relay_fault" in m.status_flags()
    m.faults = {Fault.VOLTAGE_SAG}
    assert m.voltage_v() < 0.82 * 230
    m.faults = {Fault.OVER_TEMPERATURE}
    m.advance(0.0)
    m.advance(5000.0)
    assert "over_temperature" in m.status_flags()
