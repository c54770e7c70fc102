"""A simulated lamp control unit: plausible physics and injectable faults, served from a profile.

Physics (per unit, advanced on every access from elapsed monotonic time):
- power follows the actual level and the rated wattage (LED driver: roughly linear);
- power factor falls at deep dimming, current = P / (V · PF);
- energy and burning hours integrate while the lamp draws power;
- driver temperature approaches ambient + a load-proportional rise, first-order (τ = 10 min).
"""

from __future__ import annotations

import enum
import math
import random
import time
from dataclasses import dataclass, field

from drivers.fields import FieldValue
from drivers.profile import DeviceProfile, RegisterSpec
from drivers.registers import codec_for


class Fault(enum.StrEnum):
    """Faults a technician can inject into a simulated lamp controller."""

    LAMP_FAILURE = "lamp_failure"  # lamp open-circuit: no power drawn, status bit set
    DRIVER_FAULT = "driver_fault"  # LED driver dead: no output, status bit set
    RELAY_FAULT = "relay_fault"  # relay stuck open: commanded on but stays off
    NO_RESPONSE = "no_response"  # controller stops answering Modbus requests
    VOLTAGE_SAG = "voltage_sag"  # supply drops to ~80 % of nominal
    OVER_TEMPERATURE = "over_temperature"  # cooling blocked: temperature climbs past 90 °C
    CORRUPT_REGISTER = "corrupt_register"  # metering chip glitch: supply voltage reads 0xFFFF
    VOLTAGE_SURGE = "voltage_surge"  # supply rises to ~112 % of nominal
    OVERDRIVE = "overdrive"  # driver misconfigured: draws ~150 % of what the level asks
    DEGRADED = "degraded"  # half the LED strings dead: draws ~60 % of what the level asks
    RELAY_WELDED = "relay_welded"  # relay stuck closed: lit (full power if asked off) whatever is asked
    CYCLING = "cycling"  # end-of-life lamp: goes out and strikes again every CYCLE_S seconds


#: faults the controller itself notices and reports in its status bits
STATUS_FAULTS = frozenset(
    {Fault.LAMP_FAILURE, Fault.DRIVER_FAULT, Fault.RELAY_FAULT, Fault.OVER_TEMPERATURE, Fault.VOLTAGE_SAG}
)
AMBIENT_C = 27.0
THERMAL_TAU_S = 600.0
FULL_LOAD_RISE_C = 30.0
STANDBY_W = 0.3
CYCLE_S = 0.7


@dataclass(slots=True)
class LampModel:
    """State and physics of one simulated lamp controller."""

    unit_id: int
    rated_power_w: float
    nominal_voltage_v: float = 230.0
    rated_power_factor: float = 0.95
    firmware_version: str = "1.4"
    level_cmd: int = 0
    on_cmd: bool = False
    energy_wh: float = 0.0
    burning_h: float = 0.0
    temperature_c: float = AMBIENT_C
    faults: set[Fault] = field(default_factory=set)
    cycle_off: bool = False  # in the dark half of a cycling fault (set in `advance`, once per sample)
    rng: random.Random = field(default_factory=random.Random)
    _last: float = field(default_factory=time.monotonic)

    # -- physics -----------------------------------------------------------------------------
    def advance(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.cycle_off = Fault.CYCLING in self.faults and int(now / CYCLE_S) % 2 == 1
        dt = max(0.0, now - self._last)
        self._last = now
        power = self.power_w()
        self.energy_wh += power * dt / 3600.0
        if power > STANDBY_W:
            self.burning_h += dt / 3600.0
        target = AMBIENT_C + FULL_LOAD_RISE_C * power / self.rated_power_w
        if Fault.OVER_TEMPERATURE in self.faults:
            target = 95.0
        self.temperature_c = target + (self.temperature_c - target) * math.exp(-dt / THERMAL_TAU_S)

    def relay_closed(self) -> bool:
        if Fault.RELAY_WELDED in self.faults:
            return True
        if self.cycle_off and Fault.CYCLING in self.faults:
            return False
        return self.on_cmd and Fault.RELAY_FAULT not in self.faults

    def actual_level(self) -> int:
        if not self.relay_closed() or Fault.DRIVER_FAULT in self.faults:
            return 0
        if Fault.RELAY_WELDED in self.faults and not (self.on_cmd and self.level_cmd):
            return 100  # no dimming signal: the driver defaults to full output
        return self.level_cmd

    def voltage_v(self) -> float:
        scale = (
            0.8 if Fault.VOLTAGE_SAG in self.faults else 1.12 if Fault.VOLTAGE_SURGE in self.faults else 1.0
        )
        return self.nominal_voltage_v * scale * (1 + self.rng.uniform(-0.01, 0.01))

    def power_w(self) -> float:
        level = self.actual_level()
        if level == 0 or Fault.LAMP_FAILURE in self.faults:
            return STANDBY_W if self.relay_closed() else 0.0
        draw = 1.5 if Fault.OVERDRIVE in self.faults else 0.6 if Fault.DEGRADED in self.faults else 1.0
        return self.rated_power_w * level / 100.0 * draw

    def power_factor(self, power: float) -> float:
        if power <= STANDBY_W:
            return 0.0
        return self.rated_power_factor * (0.6 + 0.4 * power / self.rated_power_w)

    def measurements(self) -> dict[str, FieldValue]:
        """The values a poll reports now (the drivers' field vocabulary)."""
        self.advance()
        power = self.power_w() * (1 + self.rng.uniform(-0.005, 0.005))
        voltage = self.voltage_v()
        pf = self.power_factor(power)
        current = power / (voltage * pf) if pf else 0.0
        return {
            "dim_level_pct": self.actual_level(),
            "lamp_on": self.relay_closed(),
            "voltage_v": voltage,
            "current_a": current,
            "power_w": power,
            "power_factor": pf,
            "energy_wh": self.energy_wh,
            "temperature_c": self.temperature_c,
            "burning_hours_h": self.burning_h,
            "firmware_version": self.firmware_version,
            "rated_power_w": self.rated_power_w,
        }

    def status_flags(self) -> set[str]:
        flags = {f.value for f in self.faults if f in STATUS_FAULTS}
        if self.temperature_c > 85.0:
            flags.add(Fault.OVER_TEMPERATURE.value)
        if Fault.RELAY_FAULT in self.faults and not self.on_cmd:
            flags.discard(Fault.RELAY_FAULT.value)  # a stuck-open relay is only noticed when on
        return flags

    def setpoints(self) -> dict[str, FieldValue]:
        return {"dim_level_pct": self.level_cmd, "lamp_on": self.on_cmd}

    def apply_setpoint(self, name: str, value: float) -> None:
        self.advance()  # integrate up to now at the old level
        if name == "dim_level_pct":
            self.level_cmd = int(value)
        elif name == "lamp_on":
            self.on_cmd = bool(value)


class RegisterImage:
    """Encodes a LampModel into the register tables its profile declares, and decodes writes."""

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        self.codec = codec_for(profile)
        self.by_table: dict[str, list[RegisterSpec]] = {"holding": [], "input": []}
        for reg in profile.registers:
            self.by_table[reg.table].append(reg)
        self.size = {
            t: max((r.address + r.width for r in regs), default=1) for t, regs in self.by_table.items()
        }

    def fill(self, table: str, lamp: LampModel, registers: list[int]) -> None:
        """Write the lamp's current state into a table's register list, in place."""
        values = lamp.measurements() if table == "input" else lamp.setpoints()
        flags = lamp.status_flags() if table == "input" else set()
        for reg in self.by_table[table]:
            if reg.bits:
                word = sum(1 << bit for flag, bit in reg.bits.items() if flag in flags)
                registers[reg.address] = word
                continue
            name = reg.field if table == "input" else reg.setpoint
            if name is None or name not in values:
                continue
            value = values[name]
            if reg.max is not None and isinstance(value, float | int) and not isinstance(value, bool):
                value = min(float(value), reg.max)
            words = self.codec.encode_measurement(reg, value)
            registers[reg.address : reg.address + len(words)] = words
        if table == "input" and Fault.CORRUPT_REGISTER in lamp.faults:
            voltage = next((r for r in self.by_table["input"] if r.field == "voltage_v"), None)
            if voltage is not None:
                registers[voltage.address] = 0xFFFF

    def decode_write(self, address: int, words: list[int]) -> dict[str, float]:
        """Holding-register write → {setpoint: value}; ValueError if out of range or unknown."""
        out: dict[str, float] = {}
        end = address + len(words)
        for reg in self.by_table["holding"]:
            if reg.setpoint is None or not (address <= reg.address < end):
                continue
            chunk = words[reg.address - address : reg.address - address + reg.width]
            raw = chunk[0] * reg.scale
            if (reg.min is not None and raw < reg.min) or (reg.max is not None and raw > reg.max):
                raise ValueError(f"{reg.name}={raw:g} outside {reg.min}..{reg.max}")
            out[reg.setpoint] = raw
        if not out:
            raise ValueError(f"no writable register at {address}..{end - 1}")
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class SimLamp:
    """One simulated lamp controller on a segment."""

    unit_id: int
    rated_power_w: float
    device_id: str = ""
    profile: str = "lamp_lcu"
